/*
 * log: see log.h. One buffer per line, written with a single write(2) so
 * lines from the loop and storage threads never interleave.
 */
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static int is_json_lines;

void
log_set_json(int is_json)
{
	is_json_lines = is_json;
}

/* Appends text to out as a JSON string body (quotes and controls
 * escaped); returns the new length, bounded by cap. */
static size_t
json_escape(char *out, size_t n, size_t cap, const char *text)
{
	for (; *text && n + 7 < cap; text++) {
		unsigned char ch = (unsigned char)*text;

		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch < 0x20) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
		} else {
			out[n++] = (char)ch;
		}
	}
	return n;
}

/* Appends text to out with control characters (and backslash) written
 * as \xNN, so that text from outside (a path, a name) cannot start a
 * line of its own; returns the new length, bounded by cap. */
static size_t
text_escape(char *out, size_t n, size_t cap, const char *text)
{
	for (; *text && n + 5 < cap; text++) {
		unsigned char ch = (unsigned char)*text;

		if (ch < 0x20 || ch == 0x7f || ch == '\\')
			n += (size_t)snprintf(out + n, cap - n, "\\x%02x", ch);
		else
			out[n++] = (char)ch;
	}
	return n;
}

static const char *const level_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

void
log_set_level(enum log_level level)
{
	min_level = level;
}

int
log_level_parse(const char *s)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };

	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const json_levels[] = { "debug", "info", "warn",
						   "error" };
	char stamp[40], msg[1024], line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	if (is_json_lines) {
		n = (size_t)snprintf(
			line, sizeof(line),
			"{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", stamp,
			json_levels[level]);
		n = json_escape(line, n, sizeof(line) - 3, msg);
		line[n++] = '"';
		line[n++] = '}';
	} else {
		n = (size_t)snprintf(line, sizeof(line), "%s %s ", stamp,
				     level_names[level]);
		/* Room for the newline stays. */
		n = text_escape(line, n, sizeof(line) - 1, msg);
	}
	line[n++] = '\n';
	/* Nothing useful to do if stderr is gone. */
	(void)!write(STDERR_FILENO, line, n);
}
