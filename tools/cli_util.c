/*
 * cli_util.c: helpers shared by the ringmq commands: error lines, exit
 * codes, the name rule, connecting, and JSON string output.
 */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

void
cli_error(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ringmq: %s: ", ringmq_code_name(code));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
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
	size_t len = strlen(name);

	if (len == 0 || len > 196)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		int is_alnum = (ch >= 'a' && ch <= 'z') ||
			       (ch >= 'A' && ch <= 'Z') ||
			       (ch >= '0' && ch <= '9');

		if (is_alnum)
			continue;
		if (i == 0 || (ch != '.' && ch != '_' && ch != '-'))
			return 0;
	}
	return 1;
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
