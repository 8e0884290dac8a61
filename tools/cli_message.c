/*
 * cli_message.c: stored messages read without leasing them: "ringmq
 * peek", "ringmq message show", "ringmq dlq list"; and "ringmq message
 * cancel" (cancel a delayed message by queue, partition and offset).
 *
 * Each answer holds at most what the broker puts in one frame; peek pages
 * through a partition by offset until it has printed --count messages or
 * the partition has no more.
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

/* Default number of messages peek prints. */
#define PEEK_DEFAULT_COUNT 10

/* Payload characters shown in a table row. */
#define TABLE_PAYLOAD_CHARS 40

/* A message of a stored-messages result, as struct cli_msg's source. */
struct stored_ref {
	const ringmq_stored_messages *l;
	size_t i;
};

static const char *
ref_header_name(const void *src, size_t h)
{
	const struct stored_ref *r = src;

	return ringmq_stored_messages_header_name(r->l, r->i, h);
}

static const void *
ref_header_value(const void *src, size_t h, size_t *lenp)
{
	const struct stored_ref *r = src;

	return ringmq_stored_messages_header_value(r->l, r->i, h, lenp);
}

/* One JSON line for message i of l, of queue (not leased). */
static void
print_stored_json(const char *queue, const ringmq_stored_messages *l, size_t i)
{
	struct stored_ref ref = { l, i };
	struct cli_msg m = { 0 };

	m.queue = queue;
	m.partition = ringmq_stored_messages_partition(l, i);
	m.offset = ringmq_stored_messages_offset(l, i);
	m.publish_ms = ringmq_stored_messages_publish_ms(l, i);
	m.payload = ringmq_stored_messages_payload(l, i, &m.payload_len);
	m.key = ringmq_stored_messages_key(l, i, &m.key_len);
	m.nheaders = ringmq_stored_messages_header_count(l, i);
	m.header_name = ref_header_name;
	m.header_value = ref_header_value;
	m.src = &ref;
	cli_print_msg_json(stdout, &m);
}

/* Writes bytes for a human: printable ASCII as is (but the backslash
 * and also), the rest as \xNN; with max > 0 at most max bytes, then
 * "...". also: one more character to escape, or 0. @return columns
 * written. */
static int
print_escaped_but(const void *bytes, size_t len, size_t max, int also)
{
	const unsigned char *p = bytes;
	int cols = 0;

	for (size_t i = 0; i < len; i++) {
		if (max > 0 && i == max) {
			fputs("...", stdout);
			return cols + 3;
		}
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' &&
		    p[i] != also) {
			fputc(p[i], stdout);
			cols++;
		} else {
			printf("\\x%02x", p[i]);
			cols += 4;
		}
	}
	return cols;
}

static int
print_escaped(const void *bytes, size_t len, size_t max)
{
	return print_escaped_but(bytes, len, max, 0);
}

/* The value of header name of message i as a string, or "-". */
static void
print_header_value(const ringmq_stored_messages *l, size_t i, const char *name,
		   int width)
{
	size_t n = ringmq_stored_messages_header_count(l, i);
	char buf[256];

	for (size_t h = 0; h < n; h++) {
		size_t len;
		const void *v;

		if (strcmp(ringmq_stored_messages_header_name(l, i, h), name) !=
		    0)
			continue;
		v = ringmq_stored_messages_header_value(l, i, h, &len);
		snprintf(buf, sizeof(buf), "%.*s", (int)len, (const char *)v);
		printf("%-*s", width, buf);
		return;
	}
	printf("%-*s", width, "-");
}

/* Set once the peek table's header is out. */
static int is_peek_header_done;

static void
print_peek_header(void)
{
	is_peek_header_done = 1;
	printf("%9s  %12s  %-24s  %8s  %-12s  %s\n", "PARTITION", "OFFSET",
	       "PUBLISHED", "BYTES", "KEY", "PAYLOAD");
}

static void
print_peek_row(const ringmq_stored_messages *l, size_t i)
{
	size_t len, klen;
	const void *payload = ringmq_stored_messages_payload(l, i, &len);
	const void *key = ringmq_stored_messages_key(l, i, &klen);
	char when[40];
	int cols;

	if (!is_peek_header_done)
		print_peek_header();
	printf("%9" PRIu32 "  %12" PRIu64 "  %-24s  %8zu  ",
	       ringmq_stored_messages_partition(l, i),
	       ringmq_stored_messages_offset(l, i),
	       cli_format_time(when, sizeof(when),
			       ringmq_stored_messages_publish_ms(l, i)),
	       len);
	cols = key != NULL ? print_escaped(key, klen, 8) : printf("-");
	printf("%*s", cols < 12 ? 14 - cols : 2, "");
	(void)print_escaped(payload, len, TABLE_PAYLOAD_CHARS);
	fputc('\n', stdout);
}

/*
 * Prints up to *remaining messages of one partition from offset 0 on,
 * page by page. @return OK or the failed call's status (reported).
 */
static int
peek_partition(const struct cli *cli, ringmq_client *c, int partition,
	       uint64_t *remaining)
{
	uint64_t from = 0;

	while (*remaining > 0) {
		ringmq_stored_messages *l = NULL;
		uint32_t want = *remaining > UINT32_MAX ? UINT32_MAX
							: (uint32_t)*remaining;
		char what[256];
		size_t n;
		int rc = ringmq_peek_get(c, &l, cli->args[0], partition, from,
					 want);

		if (rc != RINGMQ_OK) {
			snprintf(what, sizeof(what), "peek %s", cli->args[0]);
			return cli_fail(c, rc, what);
		}
		n = ringmq_stored_messages_count(l);
		for (size_t i = 0; i<n && * remaining> 0; i++, (*remaining)--) {
			if (cli->is_json)
				print_stored_json(cli->args[0], l, i);
			else
				print_peek_row(l, i);
		}
		if (n > 0)
			from = ringmq_stored_messages_offset(l, n - 1) + 1;
		ringmq_stored_messages_free(l);
		if (n == 0 || ferror(stdout))
			break;
	}
	return RINGMQ_OK;
}

/* Partitions of queue from the queue list; 0 when it is not listed. */
static uint32_t
queue_partitions(ringmq_client *c, const char *queue, const char **dlqp)
{
	ringmq_queue_list *l = NULL;
	uint32_t n = 0;
	static char dlq[256];

	if (ringmq_queue_list_get(c, &l) != RINGMQ_OK)
		return 0;
	for (size_t i = 0; i < ringmq_queue_list_count(l); i++) {
		const char *d;

		if (strcmp(ringmq_queue_list_name(l, i), queue) != 0)
			continue;
		n = ringmq_queue_list_partitions(l, i);
		d = ringmq_queue_list_dead_letter_queue(l, i);
		if (dlqp != NULL && d != NULL) {
			snprintf(dlq, sizeof(dlq), "%s", d);
			*dlqp = dlq;
		}
	}
	ringmq_queue_list_free(l);
	return n;
}

int
cmd_peek(const struct cli *cli, ringmq_client *c)
{
	uint64_t remaining = cli->count ? cli->count : PEEK_DEFAULT_COUNT;
	uint32_t nparts;
	int rc = RINGMQ_OK;

	if (cli->has_partition) {
		rc = peek_partition(cli, c, (int)cli->partition, &remaining);
	} else {
		/* Unlisted: one request gets the broker's own refusal. */
		nparts = queue_partitions(c, cli->args[0], NULL);
		if (nparts == 0)
			rc = peek_partition(cli, c, -1, &remaining);
		for (uint32_t p = 0; p < nparts && rc == RINGMQ_OK; p++)
			rc = peek_partition(cli, c, (int)p, &remaining);
	}
	/* An empty table still has its header; a refusal prints nothing. */
	if (rc == RINGMQ_OK && !cli->is_json && !is_peek_header_done)
		print_peek_header();
	return rc;
}

static void
print_show(const char *queue, const ringmq_stored_messages *l)
{
	size_t len;
	const void *payload = ringmq_stored_messages_payload(l, 0, &len);
	size_t klen;
	const void *key = ringmq_stored_messages_key(l, 0, &klen);
	size_t nh = ringmq_stored_messages_header_count(l, 0);
	char when[40];

	printf("%-10s %s\n", "queue", queue);
	printf("%-10s %" PRIu32 "\n", "partition",
	       ringmq_stored_messages_partition(l, 0));
	printf("%-10s %" PRIu64 "\n", "offset",
	       ringmq_stored_messages_offset(l, 0));
	printf("%-10s %s\n", "published",
	       cli_format_time(when, sizeof(when),
			       ringmq_stored_messages_publish_ms(l, 0)));
	printf("%-10s ", "key");
	if (key != NULL)
		(void)print_escaped(key, klen, 0);
	else
		fputc('-', stdout);
	fputc('\n', stdout);
	for (size_t h = 0; h < nh; h++) {
		const char *name = ringmq_stored_messages_header_name(l, 0, h);
		size_t vlen;
		const void *v =
			ringmq_stored_messages_header_value(l, 0, h, &vlen);

		/* The name escaped too, "=" with it: one line per header,
		 * and the first "=" ends the name. */
		printf("%-10s ", "header");
		(void)print_escaped_but(name, strlen(name), 0, '=');
		fputc('=', stdout);
		(void)print_escaped(v, vlen, 0);
		fputc('\n', stdout);
	}
	printf("%-10s %zu\n%-10s ", "bytes", len, "payload");
	(void)print_escaped(payload, len, 0);
	fputc('\n', stdout);
}

/* "queue Q partition P offset O: ..." for a failed call on the
 * command's message. @return rc. */
static int
fail_message(const struct cli *cli, ringmq_client *c, int rc)
{
	char what[256];

	snprintf(what, sizeof(what),
		 "queue %s partition %" PRIu32 " offset %" PRIu64, cli->args[0],
		 cli->partition, cli->offset);
	return cli_fail(c, rc, what);
}

int
cmd_message_show(const struct cli *cli, ringmq_client *c)
{
	ringmq_stored_messages *l = NULL;
	int rc = ringmq_message_show_get(c, &l, cli->args[0], cli->partition,
					 cli->offset);

	if (rc != RINGMQ_OK)
		return fail_message(cli, c, rc);
	if (cli->is_json)
		print_stored_json(cli->args[0], l, 0);
	else
		print_show(cli->args[0], l);
	ringmq_stored_messages_free(l);
	return rc;
}

int
cmd_message_cancel(const struct cli *cli, ringmq_client *c)
{
	int rc = ringmq_message_cancel(c, cli->args[0], cli->partition,
				       cli->offset);

	if (rc != RINGMQ_OK)
		return fail_message(cli, c, rc);
	cli_print_ok(cli);
	return rc;
}

/* Prints the first n messages of l as table rows, after the table's
 * header if is_first. */
static void
print_dlq_table(const ringmq_stored_messages *l, size_t n, int is_first)
{
	if (is_first)
		printf("%9s  %12s  %-16s  %-14s  %10s  %s\n", "PARTITION",
		       "OFFSET", "GROUP", "REASON", "DELIVERIES", "PAYLOAD");
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const void *payload =
			ringmq_stored_messages_payload(l, i, &len);

		printf("%9" PRIu32 "  %12" PRIu64 "  ",
		       ringmq_stored_messages_partition(l, i),
		       ringmq_stored_messages_offset(l, i));
		print_header_value(l, i, "ringmq-source-group", 16);
		fputs("  ", stdout);
		print_header_value(l, i, "ringmq-dlq-reason", 14);
		fputs("  ", stdout);
		print_header_value(l, i, "ringmq-delivery-count", 10);
		fputs("  ", stdout);
		(void)print_escaped(payload, len, TABLE_PAYLOAD_CHARS);
		fputc('\n', stdout);
	}
}

int
cmd_dlq_list(const struct cli *cli, ringmq_client *c)
{
	ringmq_stored_messages *l = NULL;
	const char *dlq = NULL;
	char fallback[256];
	char what[256];
	uint64_t remaining, from_off = 0;
	uint32_t from_part = 0;
	int is_first = 1;
	int rc = RINGMQ_OK;

	/* Positions printed are the dead-letter queue's: name it. */
	(void)queue_partitions(c, cli->args[0], &dlq);
	if (dlq == NULL) {
		snprintf(fallback, sizeof(fallback), "%s.dlq", cli->args[0]);
		dlq = fallback;
	}
	remaining = cli->count ? cli->count : ringmq_client_max_batch_count(c);
	/* Page by page: an answer holds at most the broker's batch limit
	 * (fewer when they would not fit in one frame). */
	while (remaining > 0) {
		uint32_t want = remaining > UINT32_MAX ? UINT32_MAX
						       : (uint32_t)remaining;
		size_t n;

		rc = ringmq_dlq_list_get_from(c, &l, cli->args[0], from_part,
					      from_off, want);
		if (rc != RINGMQ_OK) {
			snprintf(what, sizeof(what), "dead letters of %s",
				 cli->args[0]);
			(void)cli_fail(c, rc, what);
			break;
		}
		n = ringmq_stored_messages_count(l);
		if (n > remaining)
			n = (size_t)remaining;
		if (cli->is_json) {
			for (size_t i = 0; i < n; i++)
				print_stored_json(dlq, l, i);
		} else {
			print_dlq_table(l, n, is_first);
		}
		is_first = 0;
		remaining -= n;
		if (n > 0) {
			from_part = ringmq_stored_messages_partition(l, n - 1);
			from_off = ringmq_stored_messages_offset(l, n - 1) + 1;
		}
		ringmq_stored_messages_free(l);
		l = NULL;
		if (n == 0 || ferror(stdout))
			break;
	}
	return rc;
}
