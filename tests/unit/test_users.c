/*
 * test_users: the users table (core/users.c) over a real store: names and
 * patterns, permission look-ups, changes committed in order, what a
 * restart loads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/users.h"
#include "lib/err.h"
#include "store/store.h"
#include "tmpdir.h"

#define TEST_MAP_BYTES (64ull << 20)

struct fixture {
	char dir[64];
	struct store *st;
	struct users *us;
	int hooked; /* hook calls */
	struct user *last_hooked;
};

static void
hook(void *ctx, struct user *u)
{
	struct fixture *f = ctx;

	f->hooked++;
	f->last_hooked = u;
}

static void
open_all(struct fixture *f)
{
	struct store_opts o = { f->dir, TEST_MAP_BYTES, STORE_SYNC_NEVER, 0, 0,
				0 };
	struct store_load_cb cb = { .user = users_load };

	assert_int_equal(store_open(&f->st, &o), 0);
	assert_int_equal(users_new(&f->us, f->st), 0);
	users_set_hook(f->us, hook, f);
	assert_int_equal(store_load(f->st, &cb, f->us), 0);
}

static void
close_all(struct fixture *f)
{
	store_close(f->st);
	users_free(f->us);
	f->st = NULL;
	f->us = NULL;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/ringmq-users-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	open_all(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	close_all(f);
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void
record(void *ctx, int status)
{
	int *out = ctx;

	*out = status;
}

/* Waits for every change asked so far. */
static void
settle(struct fixture *f)
{
	store_drain(f->st);
	(void)store_reap(f->st);
}

static struct user_change
add_of(const char *name)
{
	struct user_change ch = { .kind = USER_ADD, .has_keys = true };

	snprintf(ch.name, sizeof(ch.name), "%s", name);
	ch.iterations = 4096;
	ch.salt_len = 4;
	memcpy(ch.salt, "salt", 4);
	memset(ch.stored_key, 1, sizeof(ch.stored_key));
	memset(ch.server_key, 2, sizeof(ch.server_key));
	return ch;
}

static struct user_change
acl_of(const char *name, const char *pattern, unsigned bits)
{
	struct user_change ch = { .kind = bits ? USER_ACL_SET
					       : USER_ACL_DELETE };

	snprintf(ch.name, sizeof(ch.name), "%s", name);
	snprintf(ch.pattern, sizeof(ch.pattern), "%s", pattern);
	ch.bits = bits;
	return ch;
}

static void
test_names_and_patterns(void **state)
{
	char long_name[STORE_USER_MAX + 2];

	(void)state;
	assert_true(user_name_ok("alice"));
	assert_true(user_name_ok("svc.web-1_a@example.com"));
	assert_false(user_name_ok(""));
	assert_false(user_name_ok("a b"));
	assert_false(user_name_ok("a,b"));
	assert_false(user_name_ok("a=b"));
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_false(user_name_ok(long_name));
	long_name[STORE_USER_MAX] = '\0';
	assert_true(user_name_ok(long_name));

	assert_true(user_pattern_ok("*"));
	assert_true(user_pattern_ok("jobs.*"));
	assert_false(user_pattern_ok(""));
	assert_false(user_pattern_ok("jobs?"));
	assert_false(user_pattern_ok("a/b"));
}

static void
test_pattern_matching(void **state)
{
	static const struct {
		const char *pattern, *name;
		int match;
	} cases[] = {
		{ "*", "jobs", 1 },
		{ "jobs", "jobs", 1 },
		{ "jobs", "jobs.dlq", 0 },
		{ "jobs.*", "jobs.email", 1 },
		{ "jobs.*", "jobs.email.dlq", 1 },
		{ "jobs.*", "jobs", 0 },
		{ "jobs.*", "jobsx", 0 },
		{ "*.dlq", "jobs.dlq", 1 },
		{ "*.dlq", "jobs.dlqx", 0 },
		{ "a*b*c", "aXXbYYc", 1 },
		{ "a*b*c", "aXXbYY", 0 },
		{ "a**", "a", 1 },
		{ "*a", "aaaa", 1 },
		{ "*ab", "aab", 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(
			user_pattern_match(cases[i].pattern, cases[i].name),
			cases[i].match);
}

static void
test_add_acl_and_restart(void **state)
{
	struct fixture *f = *state;
	struct user_change add = add_of("alice");
	struct user_change set1 = acl_of("alice", "jobs.*", USER_PUBLISH);
	struct user_change set2 =
		acl_of("alice", "jobs.email", USER_CONSUME | USER_ADMIN);
	int s1 = 1, s2 = 1, s3 = 1;
	struct user *u;

	/* Asked back to back: each waits for the one before. */
	assert_int_equal(users_change(f->us, &add, record, &s1), 0);
	assert_int_equal(users_change(f->us, &set1, record, &s2), 0);
	assert_int_equal(users_change(f->us, &set2, record, &s3), 0);
	assert_null(users_find(f->us, "alice"));
	settle(f);
	settle(f);
	settle(f);
	assert_int_equal(s1, 0);
	assert_int_equal(s2, 0);
	assert_int_equal(s3, 0);
	assert_int_equal(f->hooked, 3);
	u = users_find(f->us, "alice");
	assert_non_null(u);
	assert_int_equal(user_perms_on(u, "jobs.sms"), USER_PUBLISH);
	assert_int_equal(user_perms_on(u, "jobs.email"), USER_ALL);
	assert_int_equal(user_perms_on(u, "other"), 0);

	close_all(f);
	open_all(f);
	u = users_find(f->us, "alice");
	assert_non_null(u);
	assert_int_equal(users_count(f->us), 1);
	assert_int_equal(u->iterations, 4096);
	assert_memory_equal(u->salt, "salt", 4);
	assert_int_equal(user_perms_on(u, "jobs.email"), USER_ALL);
}

static void
test_refusals(void **state)
{
	struct fixture *f = *state;
	struct user_change add = add_of("bob");
	struct user_change bad = add_of("b b");
	struct user_change acl = acl_of("nobody", "*", USER_ADMIN);
	struct user_change none = acl_of("bob", "jobs", 0);
	int st = 1;

	assert_int_equal(users_change(f->us, &bad, record, &st),
			 -RMQ_EINVALID_ARGUMENT);
	bad = add;
	bad.iterations = 100;
	assert_int_equal(users_change(f->us, &bad, record, &st),
			 -RMQ_EINVALID_ARGUMENT);
	assert_int_equal(users_change(f->us, &acl, record, &st),
			 -RMQ_EUSER_NOT_FOUND);
	assert_int_equal(users_change(f->us, &add, record, &st), 0);
	settle(f);
	assert_int_equal(st, 0);
	assert_int_equal(users_change(f->us, &add, record, &st),
			 -RMQ_EUSER_EXISTS);
	/* Nothing on that pattern to take away. */
	assert_int_equal(users_change(f->us, &none, record, &st),
			 -RMQ_EINVALID_ARGUMENT);
	/* Refused behind another change: answered through done. */
	st = 1;
	{
		int st2 = 1;
		struct user_change del = { .kind = USER_DELETE };

		snprintf(del.name, sizeof(del.name), "bob");
		assert_int_equal(users_change(f->us, &del, record, &st), 0);
		assert_int_equal(users_change(f->us, &del, record, &st2), 0);
		settle(f);
		assert_int_equal(st, 0);
		assert_int_equal(st2, -RMQ_EUSER_NOT_FOUND);
	}
	assert_null(users_find(f->us, "bob"));
}

/* A session's reference keeps a deleted user readable; a change to a
 * user is made in place, so the session sees it. */
static void
test_sessions_hold_users(void **state)
{
	struct fixture *f = *state;
	struct user_change add = add_of("carol");
	struct user_change grant = acl_of("carol", "*", USER_CONSUME);
	struct user_change del = { .kind = USER_DELETE };
	struct user *u;
	int st = 1;

	assert_int_equal(users_change(f->us, &add, record, &st), 0);
	settle(f);
	u = users_find(f->us, "carol");
	user_ref(u); /* as a session would */
	assert_int_equal(users_change(f->us, &grant, record, &st), 0);
	settle(f);
	assert_ptr_equal(users_find(f->us, "carol"), u);
	assert_int_equal(user_perms_on(u, "q"), USER_CONSUME);
	snprintf(del.name, sizeof(del.name), "carol");
	assert_int_equal(users_change(f->us, &del, record, &st), 0);
	settle(f);
	assert_int_equal(st, 0);
	assert_ptr_equal(f->last_hooked, u);
	assert_true(u->is_deleted);
	assert_null(users_find(f->us, "carol"));
	user_unref(u);
}

/* The publish rate buckets: a second's worth at once, a batch may go
 * below zero, and the wait is what refills it above zero. */
static void
test_publish_rate_buckets(void **state)
{
	struct user u = { .quota = { .publish_messages_per_s = 100,
				     .publish_bytes_per_s = 0 } };
	uint64_t t = 1000000;

	(void)state;
	u.msg_tokens = 100;
	u.refill_ms = t;
	assert_int_equal(user_publish_admit(&u, 60, 10, t), 0);
	assert_int_equal(user_publish_admit(&u, 60, 10, t), 0); /* to -20 */
	/* 21 tokens to come back above zero: 210 ms at 100 a second. */
	assert_int_equal(user_publish_admit(&u, 1, 1, t), 211);
	assert_int_equal(u.refused_rate, 1);
	assert_int_equal(user_publish_wait(&u, t + 100), 111);
	assert_int_equal(user_publish_admit(&u, 1, 1, t + 211), 0);
	assert_int_equal(u.published_msgs, 121);
	/* Never more than a second's worth, however long it waits. */
	assert_int_equal(user_publish_wait(&u, t + 100000), 0);
	assert_true(u.msg_tokens <= 100.0);
	/* A byte rate alone. */
	u.quota.publish_messages_per_s = 0;
	u.quota.publish_bytes_per_s = 1000;
	u.byte_tokens = 0;
	u.refill_ms = t;
	assert_true(user_publish_admit(&u, 1, 1, t) > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_and_patterns),
		cmocka_unit_test(test_pattern_matching),
		cmocka_unit_test(test_publish_rate_buckets),
		cmocka_unit_test_setup_teardown(test_add_acl_and_restart, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions_hold_users, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
