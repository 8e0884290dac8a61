/*
 * cli_util.c: helpers shared by the ringmq commands: error lines, exit
 * codes, the name rule, RFC 3339 times, connecting, and JSON output
 * (strings, base64, the one-line message shape).
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "name_rule.h"

void
cli_error(int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ringmq: %s: %s\n", ringmq_code_name(code), msg);
}

int
cli_fail(ringmq_client *c, int rc, const char *what)
{
	const char *msg = ringmq_client_errmsg(c);

	cli_error(rc, "%s: %s", what, msg[0] ? msg : ringmq_strerror(rc));
	return rc;
}

void
cli_print_ok(const struct cli *cli)
{
	if (cli->is_json)
		fputs("{\"ok\":true}\n", stdout);
}

void
cli_print_count(const struct cli *cli, const char *name, uint64_t n)
{
	if (cli->is_json)
		printf("{\"%s\":%" PRIu64 "}\n", name, n);
	else
		printf("%s %" PRIu64 "\n", name, n);
}

uint64_t
cli_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts); /* cannot fail */
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
cli_finish_output(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error(RINGMQ_IO, "write to standard output: %s",
			  strerror(errno));
		if (rc == RINGMQ_OK)
			rc = RINGMQ_IO;
	}
	return rc;
}

const char *
cli_format_time(char *buf, size_t len, uint64_t ms)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	if (ms == 0 || gmtime_r(&sec, &tm) == NULL ||
	    (n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	snprintf(buf + n, len - n, ".%03uZ", (unsigned)(ms % 1000));
	return buf;
}

int
cli_is_conn_failure(int status)
{
	return status == RINGMQ_UNREACHABLE ||
	       status == RINGMQ_CONNECTION_LOST || status == RINGMQ_TIMEOUT ||
	       status == RINGMQ_CLOSED;
}

int
cli_exit_code(int status)
{
	if (status == RINGMQ_OK)
		return EXIT_OK;
	if (cli_is_conn_failure(status))
		return EXIT_UNREACHABLE;
	if (status == RINGMQ_USAGE)
		return EXIT_USAGE;
	return EXIT_REFUSED;
}

int
cli_name_is_valid(const char *name)
{
	return name_rule_ok(name);
}

int
cli_queue_name_is_valid(const char *name)
{
	return name_rule_queue_ok(name);
}

/* Reads exactly n digits at *sp into *out and advances; -1 if not. */
static int
digits(const char **sp, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		char ch = (*sp)[i];

		if (ch < '0' || ch > '9')
			return -1;
		v = v * 10 + (ch - '0');
	}
	*sp += n;
	*out = v;
	return 0;
}

/* Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant,
 * "chrono-Compatible Low-Level Date Algorithms", days_from_civil). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	int64_t yoe;
	int64_t doy;
	int64_t doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31 };
	int is_leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && is_leap ? 29 : days[m - 1];
}

int
cli_parse_rfc3339(const char *s, uint64_t *msp)
{
	int year, month, day, hour, minute, second;
	int off_h = 0, off_m = 0, off_sign = 0;
	int frac_ms = 0;
	int64_t ms;

	if (digits(&s, 4, &year) < 0 || *s++ != '-' ||
	    digits(&s, 2, &month) < 0 || *s++ != '-' ||
	    digits(&s, 2, &day) < 0 || (*s != 'T' && *s != 't'))
		return -1;
	s++;
	if (digits(&s, 2, &hour) < 0 || *s++ != ':' ||
	    digits(&s, 2, &minute) < 0 || *s++ != ':' ||
	    digits(&s, 2, &second) < 0)
		return -1;
	if (*s == '.') {
		int n = 0;

		s++;
		for (; *s >= '0' && *s <= '9'; s++, n++)
			if (n < 3)
				frac_ms = frac_ms * 10 + (*s - '0');
		if (n == 0)
			return -1;
		for (; n < 3; n++)
			frac_ms *= 10;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		off_sign = *s++ == '+' ? 1 : -1;
		if (digits(&s, 2, &off_h) < 0 || *s++ != ':' ||
		    digits(&s, 2, &off_m) < 0 || off_h > 23 || off_m > 59)
			return -1;
	} else {
		return -1;
	}
	if (*s != '\0')
		return -1;
	if (month < 1 || month > 12 || day < 1 ||
	    day > days_in_month(year, month) || hour > 23 || minute > 59 ||
	    second > 60)
		return -1;
	ms = days_from_civil(year, month, day) * 86400000 +
	     (int64_t)hour * 3600000 + (int64_t)minute * 60000 +
	     (int64_t)second * 1000 + frac_ms;
	/* The local time is UTC plus the offset. */
	ms -= (int64_t)off_sign * ((int64_t)off_h * 3600000 + off_m * 60000);
	if (ms < 0)
		return -1;
	*msp = (uint64_t)ms;
	return 0;
}

int
cli_connect(const struct cli *cli, ringmq_client **clientp)
{
	char err[512];
	int rc;

	rc = ringmq_client_connect(clientp, cli->opts, err, sizeof(err));
	if (rc != RINGMQ_OK)
		cli_error(rc, "%s", err);
	return rc;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t
utf8_seq_len(const unsigned char *p, size_t n)
{
	unsigned char b = p[0];
	size_t len;
	unsigned char lo = 0x80;
	unsigned char hi = 0xbf;

	if (b >= 0xc2 && b <= 0xdf)
		len = 2;
	else if (b >= 0xe0 && b <= 0xef)
		len = 3;
	else if (b >= 0xf0 && b <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	/* Second-byte ranges that exclude overlongs, surrogates and code
	 * points above U+10FFFF (RFC 3629, section 4). */
	if (b == 0xe0)
		lo = 0xa0;
	else if (b == 0xed)
		hi = 0x9f;
	else if (b == 0xf0)
		lo = 0x90;
	else if (b == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

int
cli_utf8_is_valid(const void *bytes, size_t len)
{
	const unsigned char *p = bytes;
	size_t i = 0;

	while (i < len) {
		size_t n = p[i] < 0x80 ? 1 : utf8_seq_len(p + i, len - i);

		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

void
cli_base64(FILE *out, const void *bytes, size_t len)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = bytes;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (n > 2)
			v |= p[i + 2];
		fputc(abc[(v >> 18) & 63], out);
		fputc(abc[(v >> 12) & 63], out);
		fputc(n > 1 ? abc[(v >> 6) & 63] : '=', out);
		fputc(n > 2 ? abc[v & 63] : '=', out);
	}
}

void
cli_json_str(FILE *out, const char *s)
{
	if (s == NULL) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	(void)cli_json_string(out, s, strlen(s));
	fputc('"', out);
}

/* One JSON string value: its bytes as text, or base64. */
static void
json_bytes(FILE *out, const void *bytes, size_t len, int is_base64)
{
	fputc('"', out);
	if (is_base64)
		cli_base64(out, bytes, len);
	else
		(void)cli_json_string(out, bytes, len);
	fputc('"', out);
}

void
cli_print_msg_json(FILE *out, const struct cli_msg *m)
{
	int is_base64 =
		!cli_utf8_is_valid(m->payload, m->payload_len) ||
		(m->key != NULL && !cli_utf8_is_valid(m->key, m->key_len));

	for (size_t h = 0; h < m->nheaders && !is_base64; h++) {
		size_t len;
		const void *v = m->header_value(m->src, h, &len);

		is_base64 = !cli_utf8_is_valid(v, len);
	}
	fputs("{\"queue\":", out);
	cli_json_str(out, m->queue);
	fputs(",\"group\":", out);
	cli_json_str(out, m->group);
	fprintf(out, ",\"partition\":%" PRIu32 ",\"offset\":%" PRIu64,
		m->partition, m->offset);
	/* A string: lease ids use all 64 bits, past what a JSON number
	 * holds exactly in most readers. */
	if (m->has_lease)
		fprintf(out, ",\"lease_id\":\"%" PRIu64 "\"", m->lease_id);
	else
		fputs(",\"lease_id\":null", out);
	fprintf(out,
		",\"delivery_count\":%" PRIu32 ",\"publish_time_ms\":%" PRIu64
		",\"key\":",
		m->delivery_count, m->publish_ms);
	if (m->key != NULL)
		json_bytes(out, m->key, m->key_len, is_base64);
	else
		fputs("null", out);
	fputs(",\"headers\":{", out);
	for (size_t h = 0; h < m->nheaders; h++) {
		size_t len;
		const void *v = m->header_value(m->src, h, &len);

		if (h > 0)
			fputc(',', out);
		cli_json_str(out, m->header_name(m->src, h));
		fputc(':', out);
		json_bytes(out, v, len, is_base64);
	}
	fputs("},\"payload\":", out);
	json_bytes(out, m->payload, m->payload_len, is_base64);
	fprintf(out, ",\"encoding\":\"%s\"}\n", is_base64 ? "base64" : "utf8");
}

int
cli_json_string(FILE *out, const void *bytes, size_t len)
{
	const unsigned char *p = bytes;
	size_t i = 0;

	while (i < len) {
		unsigned char b = p[i];
		size_t n;

		if (b >= 0x80) {
			n = utf8_seq_len(p + i, len - i);
			if (n == 0) {
				fprintf(out, "\\u%04x", b);
				i++;
			} else {
				fwrite(p + i, 1, n, out);
				i += n;
			}
			continue;
		}
		switch (b) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\r': fputs("\\r", out); break;
		case '\t': fputs("\\t", out); break;
		case '\b': fputs("\\b", out); break;
		case '\f': fputs("\\f", out); break;
		default:
			if (b < 0x20 || b == 0x7f)
				fprintf(out, "\\u%04x", b);
			else
				fputc(b, out);
			break;
		}
		i++;
	}
	return ferror(out) ? -1 : 0;
}
