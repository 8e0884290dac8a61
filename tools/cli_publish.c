/*
 * cli_publish.c: "ringmq publish": messages from arguments or from lines of
 * standard input, published in batches, one output line per message in
 * input order.
 *
 * Standard input is streamed: a batch is sent once it holds the broker's
 * max batch count or about one frame of payload, and a line longer than
 * the broker's message limit is not kept past that limit (it is refused
 * here with MESSAGE_TOO_LARGE), so memory stays bounded whatever the
 * input size.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes asked of each read() of standard input. */
#define STDIN_CHUNK_BYTES 65536

struct pub {
	const struct cli *cli;
	ringmq_client *c;     /* NULL when the connect failed */
	int conn_rc;	      /* sticky connect / connection failure, else OK */
	int is_conn_reported; /* its stderr line is out */
	int is_refused;	      /* some message was refused */
	int is_io_failed;     /* standard output failed: stop */

	ringmq_message **batch; /* owned messages waiting to be sent */
	size_t n;
	size_t max_count;
	size_t bytes;
	size_t max_bytes;
};

/* Prints one result line; sets is_io_failed when stdout fails. */
static void
print_result(struct pub *p, int code, uint32_t partition, uint64_t offset,
	     int is_duplicate, const char *text)
{
	if (code != RINGMQ_OK) {
		if (!cli_is_conn_failure(code)) {
			p->is_refused = 1;
			cli_error(code, "%s",
				  text && text[0] ? text
						  : ringmq_strerror(code));
		} else if (!p->is_conn_reported) {
			p->is_conn_reported = 1;
			cli_error(code, "%s",
				  text && text[0] ? text
						  : ringmq_strerror(code));
		}
		if (p->cli->is_json) {
			printf("{\"error\":{\"code\":\"%s\",\"message\":",
			       ringmq_code_name(code));
			cli_json_str(stdout, text && text[0]
						     ? text
						     : ringmq_strerror(code));
			fputs("}}\n", stdout);
		} else {
			printf("error %s\n", ringmq_code_name(code));
		}
	} else if (p->cli->is_json) {
		printf("{\"partition\":%" PRIu32 ",\"offset\":%" PRIu64
		       ",\"duplicate\":%s}\n",
		       partition, offset, is_duplicate ? "true" : "false");
	} else {
		printf("%" PRIu32 " %" PRIu64 "\n", partition, offset);
	}
	if (ferror(stdout))
		p->is_io_failed = 1;
}

/* Sends the waiting batch and prints its results in order. */
static void
flush_batch(struct pub *p)
{
	ringmq_publish_results *r = NULL;
	int rc;

	if (p->n == 0)
		return;
	rc = ringmq_publish_batch(p->c, p->cli->args[0],
				  (const ringmq_message *const *)p->batch, p->n,
				  &r);
	for (size_t i = 0; i < p->n; i++) {
		if (r == NULL)
			print_result(p, rc, 0, 0, 0,
				     ringmq_client_errmsg(p->c));
		else
			print_result(p, ringmq_publish_results_code(r, i),
				     ringmq_publish_results_partition(r, i),
				     ringmq_publish_results_offset(r, i),
				     ringmq_publish_results_is_duplicate(r, i),
				     ringmq_publish_results_message(r, i));
		ringmq_message_free(p->batch[i]);
	}
	ringmq_publish_results_free(r);
	p->n = 0;
	p->bytes = 0;
	if (cli_is_conn_failure(rc))
		p->conn_rc = rc;
	if (fflush(stdout) != 0)
		p->is_io_failed = 1;
}

/*
 * A message of len bytes with the invocation's key, delay or deliver-at
 * time, and dedup id; NULL when out of memory.
 */
static ringmq_message *
message_build(const struct cli *cli, const void *data, size_t len)
{
	ringmq_message *m = ringmq_message_new(data, len);
	int rc = m ? RINGMQ_OK : RINGMQ_INTERNAL;

	if (rc == RINGMQ_OK && cli->key != NULL)
		rc = ringmq_message_set_key(m, cli->key, strlen(cli->key));
	for (size_t i = 0; rc == RINGMQ_OK && i < cli->nheaders; i++)
		rc = ringmq_message_add_header(m, cli->headers[i].name,
					       cli->headers[i].value,
					       strlen(cli->headers[i].value));
	if (rc == RINGMQ_OK && cli->has_delay)
		rc = ringmq_message_set_delay_ms(m, cli->delay_ms);
	if (rc == RINGMQ_OK && cli->has_deliver_at)
		rc = ringmq_message_set_deliver_at_ms(m, cli->deliver_at_ms);
	if (rc == RINGMQ_OK && cli->dedup_id != NULL)
		rc = ringmq_message_set_dedup_id(m, cli->dedup_id);
	if (rc != RINGMQ_OK) {
		ringmq_message_free(m);
		return NULL;
	}
	return m;
}

/*
 * One message of the input. data is NULL when the message was longer than
 * the broker's limit and not kept; len is its full length.
 */
static void
feed(struct pub *p, const void *data, size_t len)
{
	char text[160];
	ringmq_message *m;

	if (p->is_io_failed)
		return;
	if (p->conn_rc != RINGMQ_OK) {
		flush_batch(p);
		print_result(p, p->conn_rc, 0, 0, 0,
			     ringmq_strerror(p->conn_rc));
		return;
	}
	if (data == NULL || len > ringmq_client_max_message_bytes(p->c)) {
		/* Results must stay in input order. */
		flush_batch(p);
		snprintf(text, sizeof(text),
			 "message of %zu bytes is over the broker's limit of "
			 "%" PRIu32 " bytes",
			 len, ringmq_client_max_message_bytes(p->c));
		print_result(p, RINGMQ_MESSAGE_TOO_LARGE, 0, 0, 0, text);
		return;
	}
	m = message_build(p->cli, data, len);
	if (m == NULL) {
		flush_batch(p);
		print_result(p, RINGMQ_INTERNAL, 0, 0, 0, "out of memory");
		return;
	}
	p->batch[p->n++] = m;
	p->bytes += len;
	if (p->n == p->max_count || p->bytes >= p->max_bytes)
		flush_batch(p);
}

/* Line assembly state for standard input. */
struct line {
	uint8_t *buf; /* owned */
	size_t len;   /* bytes kept in buf */
	size_t cap;
	size_t full_len; /* bytes of the line so far, kept or not */
	size_t keep_max; /* bytes worth keeping: the message limit + 1 */
};

/* Appends bytes of the current line, keeping at most keep_max. */
static int
line_append(struct line *l, const uint8_t *data, size_t n)
{
	size_t keep = n;

	l->full_len += n;
	if (l->len + keep > l->keep_max)
		keep = l->keep_max > l->len ? l->keep_max - l->len : 0;
	if (keep == 0)
		return 0;
	if (l->len + keep > l->cap) {
		size_t ncap = l->cap ? l->cap : 4096;
		uint8_t *nbuf;

		while (ncap < l->len + keep)
			ncap *= 2;
		nbuf = realloc(l->buf, ncap);
		if (nbuf == NULL)
			return -1;
		l->buf = nbuf;
		l->cap = ncap;
	}
	memcpy(l->buf + l->len, data, keep);
	l->len += keep;
	return 0;
}

/* Hands the finished line to feed() and starts the next. */
static void
line_end(struct pub *p, struct line *l)
{
	int is_kept = l->full_len == l->len;

	feed(p, is_kept ? (l->buf ? (const void *)l->buf : "") : NULL,
	     l->full_len);
	l->len = 0;
	l->full_len = 0;
}

/* Opens file path for publish_file, before connecting: a file that
 * cannot be opened, or a directory, is a usage error (exit 2).
 * @return the file, or NULL (reported). */
static FILE *
publish_file_open(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;

	if (f == NULL) {
		cli_error(RINGMQ_USAGE, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		cli_error(RINGMQ_USAGE, "%s: %s", path, strerror(EISDIR));
		fclose(f);
		return NULL;
	}
	return f;
}

/*
 * Publishes the contents of f (file path) as one message, and closes f.
 * A file over the broker's message limit is refused (MESSAGE_TOO_LARGE)
 * without being read to the end. @return 0, or -1 when it cannot be read
 * (reported).
 */
static int
publish_file(struct pub *p, FILE *f, const char *path)
{
	size_t limit = p->c ? ringmq_client_max_message_bytes(p->c) : 0;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = -1;

	for (;;) {
		size_t n;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			uint8_t *nbuf = realloc(buf, ncap);

			if (nbuf == NULL) {
				cli_error(RINGMQ_INTERNAL, "out of memory");
				goto out;
			}
			buf = nbuf;
			cap = ncap;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0 && ferror(f)) {
			cli_error(RINGMQ_IO, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		/* Past the limit the rest does not matter. */
		if (p->c != NULL && len > limit)
			break;
	}
	feed(p, p->c != NULL && len > limit ? NULL : (buf ? (void *)buf : ""),
	     len);
	rc = 0;
out:
	free(buf);
	fclose(f);
	return rc;
}

/* Reads standard input to its end, one message per line. */
static int
publish_stdin(struct pub *p)
{
	struct line l = { 0 };
	uint8_t *chunk = malloc(STDIN_CHUNK_BYTES);
	int rc = 0;

	/* Without a connection the bytes do not matter, only the lines. */
	l.keep_max =
		p->c ? (size_t)ringmq_client_max_message_bytes(p->c) + 1 : 0;
	if (chunk == NULL) {
		cli_error(RINGMQ_INTERNAL, "out of memory");
		return -1;
	}
	while (!p->is_io_failed) {
		ssize_t n = read(STDIN_FILENO, chunk, STDIN_CHUNK_BYTES);
		size_t start = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_error(RINGMQ_IO, "read standard input: %s",
				  strerror(errno));
			rc = -1;
			break;
		}
		if (n == 0) {
			/* A last line without \n is still a message. */
			if (l.full_len > 0)
				line_end(p, &l);
			break;
		}
		for (size_t i = 0; i < (size_t)n; i++) {
			if (chunk[i] != '\n')
				continue;
			if (line_append(&l, chunk + start, i - start) < 0)
				goto nomem;
			line_end(p, &l);
			start = i + 1;
		}
		if (line_append(&l, chunk + start, (size_t)n - start) < 0)
			goto nomem;
	}
	goto out;
nomem:
	cli_error(RINGMQ_INTERNAL, "out of memory");
	rc = -1;
out:
	free(chunk);
	free(l.buf);
	return rc;
}

int
cmd_publish(const struct cli *cli)
{
	struct pub p = { 0 };
	FILE *file = NULL;
	int rc;
	int is_input_failed = 0;

	p.cli = cli;
	if (cli->file != NULL && (file = publish_file_open(cli->file)) == NULL)
		return EXIT_USAGE;
	rc = cli_connect(cli, &p.c);
	if (rc != RINGMQ_OK) {
		/* Every message still gets its line. */
		p.conn_rc = rc;
		p.is_conn_reported = 1;
		if (!cli_is_conn_failure(rc))
			p.is_refused = 1;
	} else {
		p.max_count = ringmq_client_max_batch_count(p.c);
		p.max_bytes = ringmq_client_max_frame_bytes(p.c);
		p.batch = calloc(p.max_count, sizeof(*p.batch));
		if (p.batch == NULL) {
			cli_error(RINGMQ_INTERNAL, "out of memory");
			ringmq_client_free(p.c);
			if (file != NULL)
				fclose(file);
			return EXIT_REFUSED;
		}
	}

	if (file != NULL) {
		if (publish_file(&p, file, cli->file) < 0)
			is_input_failed = 1;
	} else if (cli->nargs > 1) {
		for (size_t i = 1; i < cli->nargs; i++)
			feed(&p, cli->args[i], strlen(cli->args[i]));
	} else if (publish_stdin(&p) < 0) {
		is_input_failed = 1;
	}
	flush_batch(&p);
	if (fflush(stdout) != 0 || ferror(stdout))
		p.is_io_failed = 1;
	if (p.is_io_failed)
		cli_error(RINGMQ_IO, "write to standard output: %s",
			  strerror(errno));
	free(p.batch);
	ringmq_client_free(p.c);

	if (cli_is_conn_failure(p.conn_rc))
		return EXIT_UNREACHABLE;
	if (p.is_refused || p.is_io_failed || is_input_failed)
		return EXIT_REFUSED;
	return EXIT_OK;
}
