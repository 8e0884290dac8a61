/*
 * cli_top.c: "ringmq top": the broker's figures, refreshed every interval.
 *
 * Each refresh reads Stats, QueueList and GroupList and prints one block
 * (a screen, cleared first, when standard output is a terminal; otherwise
 * blocks one after another) or, with --json, one line. Rates per second
 * come from the broker-wide counters published_total, delivered_total and
 * acked_total: their change since the previous refresh over the time
 * between the two Stats answers. The broker reports no per-queue
 * counters, so queues and groups show depths only.
 *
 * Invariant: a block is printed whole. A signal ends top after the refresh
 * in progress, with 128 + the signal's number, as consume does.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Longest sleep between checks of the signal flag, ms. */
#define SLICE_MS 100

/* ANSI: cursor home, then erase the screen. */
#define CLEAR_SCREEN "\033[H\033[2J"

static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
	got_signal = sig;
}

static int
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	/* No SA_RESTART: a sleep returns early and the loop sees the flag. */
	if (sigemptyset(&sa.sa_mask) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGTERM, &sa, NULL) < 0)
		return -1;
	return 0;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail */
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The broker-wide counters rates are made of, in the order of
 * rate_names. */
enum { R_PUBLISH, R_DELIVER, R_ACK, NRATES };

static const char *const counter_names[NRATES] = {
	"published_total",
	"delivered_total",
	"acked_total",
};

static const char *const rate_names[NRATES] = { "publish", "deliver", "ack" };

/* One refresh's answers and what is derived from them. */
struct sample {
	ringmq_stats *s;       /* owned */
	ringmq_queue_list *ql; /* owned */
	ringmq_group_list *gl; /* owned */
	int64_t at_ms;	       /* monotonic, when Stats answered */
	uint64_t wall_ms;      /* wall clock, same moment */
	int has_counter[NRATES];
	double counter[NRATES];
	int has_rate[NRATES];	   /* 0 on the first refresh or after a reset */
	double rate[NRATES];	   /* per second */
	const struct sample *prev; /* borrowed while printing; may be NULL */
};

/* The queue totals per-queue rates are made of, in rate_names order. */
static const char *const total_names[NRATES] = { "published", "delivered",
						 "acked" };

/*
 * Per-second rate k of queue i of sp against the previous sample.
 * @return 1 with *rate set, 0 when there is none (first refresh, a queue
 *         new since, a broker that does not report totals, a restart).
 */
static int
queue_rate(const struct sample *sp, size_t i, int k, double *rate)
{
	const struct sample *pv = sp->prev;
	const char *name = ringmq_queue_list_name(sp->ql, i);
	uint64_t now, before;

	if (pv == NULL || pv->ql == NULL || sp->at_ms <= pv->at_ms ||
	    !ringmq_queue_list_total(sp->ql, i, total_names[k], &now))
		return 0;
	for (size_t j = 0; j < ringmq_queue_list_count(pv->ql); j++) {
		if (strcmp(ringmq_queue_list_name(pv->ql, j), name) != 0)
			continue;
		if (!ringmq_queue_list_total(pv->ql, j, total_names[k],
					     &before) ||
		    now < before)
			return 0;
		*rate = (double)(now - before) * 1000.0 /
			(double)(sp->at_ms - pv->at_ms);
		return 1;
	}
	return 0;
}

static void
sample_fini(struct sample *sp)
{
	ringmq_stats_free(sp->s);
	ringmq_queue_list_free(sp->ql);
	ringmq_group_list_free(sp->gl);
	memset(sp, 0, sizeof(*sp));
}

/*
 * Reads one sample; rates against prev (NULL: none yet).
 * @return OK, or the failed call's status (printed).
 */
static int
sample_read(ringmq_client *c, struct sample *sp, const struct sample *prev)
{
	int rc = ringmq_stats_get(c, &sp->s);

	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "stats");
	sp->at_ms = mono_ms();
	sp->wall_ms = cli_now_ms();
	rc = ringmq_queue_list_get(c, &sp->ql);
	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "queue list");
	rc = ringmq_group_list_get(c, NULL, &sp->gl);
	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "group list");
	for (int k = 0; k < NRATES; k++) {
		double dt_s;

		sp->has_counter[k] = ringmq_stats_find(sp->s, counter_names[k],
						       &sp->counter[k]);
		if (prev == NULL || !sp->has_counter[k] ||
		    !prev->has_counter[k] || sp->at_ms <= prev->at_ms)
			continue;
		/* A counter that went down means the broker restarted (a
		 * reconnect): no rate for this interval. */
		if (sp->counter[k] < prev->counter[k])
			continue;
		dt_s = (double)(sp->at_ms - prev->at_ms) / 1000.0;
		sp->rate[k] = (sp->counter[k] - prev->counter[k]) / dt_s;
		sp->has_rate[k] = 1;
	}
	return RINGMQ_OK;
}

/* ------------------------------------------------------------------ JSON */

static void
print_json(const struct sample *sp, const char *server)
{
	size_t nq = ringmq_queue_list_count(sp->ql);

	printf("{\"time_ms\":%" PRIu64 ",\"server\":", sp->wall_ms);
	cli_json_str(stdout, server);
	fputs(",\"stats\":{", stdout);
	for (size_t i = 0; i < ringmq_stats_count(sp->s); i++) {
		if (i)
			fputc(',', stdout);
		cli_json_str(stdout, ringmq_stats_name(sp->s, i));
		fputc(':', stdout);
		cli_print_value(ringmq_stats_value(sp->s, i), 1);
	}
	fputs("},\"rates\":{", stdout);
	for (int k = 0; k < NRATES; k++) {
		printf("%s\"%s\":", k ? "," : "", rate_names[k]);
		if (sp->has_rate[k])
			printf("%.1f", sp->rate[k]);
		else
			fputs("null", stdout);
	}
	fputs("},\"queues\":[", stdout);
	for (size_t i = 0; i < nq; i++) {
		fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
		cli_json_str(stdout, ringmq_queue_list_name(sp->ql, i));
		printf(",\"partitions\":%" PRIu32 ",\"ready\":%" PRIu64
		       ",\"delayed\":%" PRIu64 ",\"in_flight\":%" PRIu64
		       ",\"groups\":%" PRIu32 ",\"messages\":%" PRIu64
		       ",\"bytes\":%" PRIu64 ",\"rates\":{",
		       ringmq_queue_list_partitions(sp->ql, i),
		       ringmq_queue_list_ready(sp->ql, i),
		       ringmq_queue_list_delayed(sp->ql, i),
		       ringmq_queue_list_in_flight(sp->ql, i),
		       ringmq_queue_list_groups(sp->ql, i),
		       ringmq_queue_list_messages(sp->ql, i),
		       ringmq_queue_list_bytes(sp->ql, i));
		for (int k = 0; k < NRATES; k++) {
			double rate;

			printf("%s\"%s\":", k ? "," : "", rate_names[k]);
			if (queue_rate(sp, i, k, &rate))
				printf("%.1f", rate);
			else
				fputs("null", stdout);
		}
		fputs("}}", stdout);
	}
	fputs("],\"groups\":[", stdout);
	cli_print_groups_json(sp->gl);
	fputs("]}\n", stdout);
}

/* ------------------------------------------------------------ the screen */

/* A byte count for people: "512 B", "40.0 KiB", "8.0 GiB". */
static const char *
fmt_bytes(char *buf, size_t len, double v)
{
	static const char *const units[] = { "B",   "KiB", "MiB",
					     "GiB", "TiB", "PiB" };
	size_t u = 0;

	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", v);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

/* A stat by name printed as a number, "-" when the broker has none. */
static void
print_stat(const struct sample *sp, const char *name)
{
	double v;

	if (ringmq_stats_find(sp->s, name, &v))
		cli_print_value(v, 0);
	else
		fputc('-', stdout);
}

static void
print_storage(const struct sample *sp)
{
	char used_s[32], limit_s[32];
	double used, limit;
	int has_used = ringmq_stats_find(sp->s, "storage_used_bytes", &used);
	int has_limit = ringmq_stats_find(sp->s, "storage_limit_bytes", &limit);

	fputs("storage      ", stdout);
	if (!has_used) {
		fputs("-\n", stdout);
		return;
	}
	fputs(fmt_bytes(used_s, sizeof(used_s), used), stdout);
	if (has_limit && limit > 0)
		printf(" of %s (%.1f%%)",
		       fmt_bytes(limit_s, sizeof(limit_s), limit),
		       100.0 * used / limit);
	fputc('\n', stdout);
}

static void
print_rates(const struct sample *sp)
{
	fputs("rates/s      ", stdout);
	for (int k = 0; k < NRATES; k++) {
		printf("%s%s ", k ? "   " : "", rate_names[k]);
		if (sp->has_rate[k])
			printf("%.1f", sp->rate[k]);
		else
			fputc('-', stdout);
	}
	fputc('\n', stdout);
}

/* Widest of the header and the names, for the first column. */
static int
name_width(const char *header, const char *(*name)(const void *, size_t),
	   const void *l, size_t n)
{
	size_t w = strlen(header);

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(name(l, i));

		if (len > w)
			w = len;
	}
	return (int)w;
}

static const char *
queue_name(const void *l, size_t i)
{
	return ringmq_queue_list_name(l, i);
}

static const char *
group_queue(const void *l, size_t i)
{
	return ringmq_group_list_queue(l, i);
}

static const char *
group_name(const void *l, size_t i)
{
	return ringmq_group_list_name(l, i);
}

static void
print_queues(const struct sample *sp)
{
	const ringmq_queue_list *ql = sp->ql;
	size_t n = ringmq_queue_list_count(ql);
	int w = name_width("QUEUE", queue_name, ql, n);

	printf("%-*s  %10s  %10s  %10s  %6s  %10s  %10s  %9s  %9s  %9s\n", w,
	       "QUEUE", "READY", "DELAYED", "IN_FLIGHT", "GROUPS", "MESSAGES",
	       "BYTES", "PUB/S", "DELIV/S", "ACK/S");
	for (size_t i = 0; i < n; i++) {
		printf("%-*s  %10" PRIu64 "  %10" PRIu64 "  %10" PRIu64
		       "  %6" PRIu32 "  %10" PRIu64 "  %10" PRIu64,
		       w, ringmq_queue_list_name(ql, i),
		       ringmq_queue_list_ready(ql, i),
		       ringmq_queue_list_delayed(ql, i),
		       ringmq_queue_list_in_flight(ql, i),
		       ringmq_queue_list_groups(ql, i),
		       ringmq_queue_list_messages(ql, i),
		       ringmq_queue_list_bytes(ql, i));
		for (int k = 0; k < NRATES; k++) {
			double rate;

			if (queue_rate(sp, i, k, &rate))
				printf("  %9.1f", rate);
			else
				printf("  %9s", "-");
		}
		fputc('\n', stdout);
	}
}

static void
print_groups(const ringmq_group_list *gl)
{
	size_t n = ringmq_group_list_count(gl);
	int wq = name_width("QUEUE", group_queue, gl, n);
	int wg = name_width("GROUP", group_name, gl, n);

	printf("%-*s  %-*s  %9s  %10s  %10s  %10s\n", wq, "QUEUE", wg, "GROUP",
	       "CONSUMERS", "READY", "IN_FLIGHT", "LAG");
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %-*s  %9" PRIu32 "  %10" PRIu64 "  %10" PRIu64
		       "  %10" PRIu64 "\n",
		       wq, ringmq_group_list_queue(gl, i), wg,
		       ringmq_group_list_name(gl, i),
		       ringmq_group_list_consumers(gl, i),
		       ringmq_group_list_ready(gl, i),
		       ringmq_group_list_in_flight(gl, i),
		       ringmq_group_list_lag(gl, i));
}

static void
print_screen(const struct sample *sp, const char *server, int interval_ms)
{
	char when[32], bytes_s[32];
	double bytes;

	printf("ringmq top  %s  %s  every %d ms\n", server,
	       cli_format_time(when, sizeof(when), sp->wall_ms), interval_ms);
	fputs("connections  ", stdout);
	print_stat(sp, "connections");
	fputs("   queues ", stdout);
	print_stat(sp, "queues");
	fputs("   groups ", stdout);
	print_stat(sp, "groups");
	fputs("\nmessages     ", stdout);
	print_stat(sp, "messages");
	if (ringmq_stats_find(sp->s, "message_bytes", &bytes))
		printf(" (%s)", fmt_bytes(bytes_s, sizeof(bytes_s), bytes));
	fputs("   ready ", stdout);
	print_stat(sp, "ready");
	fputs("   delayed ", stdout);
	print_stat(sp, "delayed");
	fputs("   in flight ", stdout);
	print_stat(sp, "in_flight");
	fputc('\n', stdout);
	print_storage(sp);
	print_rates(sp);
	fputc('\n', stdout);
	print_queues(sp);
	if (ringmq_group_list_count(sp->gl) > 0) {
		fputc('\n', stdout);
		print_groups(sp->gl);
	}
}

/* ------------------------------------------------------------- the loop */

/* Sleeps until deadline_ms (monotonic) or a signal. */
static void
sleep_until(int64_t deadline_ms)
{
	for (;;) {
		int64_t left = deadline_ms - mono_ms();

		if (got_signal || left <= 0)
			return;
		/* EINTR on a signal is the point: the flag is checked. */
		(void)poll(NULL, 0, left < SLICE_MS ? (int)left : SLICE_MS);
	}
}

int
cmd_top(const struct cli *cli)
{
	struct sample cur = { 0 }, prev = { 0 };
	ringmq_client *c = NULL;
	int is_screen = !cli->is_json && isatty(STDOUT_FILENO);
	uint64_t done = 0;
	int64_t next_ms;
	int rc;

	if (install_signals() < 0) {
		cli_error(RINGMQ_INTERNAL, "signal handlers: %s",
			  strerror(errno));
		return EXIT_REFUSED;
	}
	rc = cli_connect(cli, &c);
	if (rc != RINGMQ_OK)
		return cli_exit_code(rc);
	next_ms = mono_ms();
	for (;;) {
		rc = sample_read(c, &cur, done ? &prev : NULL);
		if (rc != RINGMQ_OK)
			break;
		cur.prev = done ? &prev : NULL;
		if (cli->is_json) {
			print_json(&cur, ringmq_client_server(c));
		} else {
			if (is_screen)
				fputs(CLEAR_SCREEN, stdout);
			else if (done)
				fputc('\n', stdout);
			print_screen(&cur, ringmq_client_server(c),
				     cli->interval_ms);
		}
		rc = cli_finish_output(RINGMQ_OK);
		if (rc != RINGMQ_OK)
			break;
		done++;
		sample_fini(&prev);
		prev = cur;
		memset(&cur, 0, sizeof(cur));
		if (got_signal || (cli->count && done >= cli->count))
			break;
		/* A fixed cadence: the next refresh starts an interval after
		 * this one started, or at once when it took longer. */
		next_ms += cli->interval_ms;
		if (next_ms < mono_ms())
			next_ms = mono_ms();
		sleep_until(next_ms);
		if (got_signal)
			break;
	}
	sample_fini(&cur);
	sample_fini(&prev);
	ringmq_client_free(c);
	if (rc != RINGMQ_OK)
		return cli_exit_code(rc);
	if (got_signal)
		return 128 + got_signal;
	return EXIT_OK;
}
