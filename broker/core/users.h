/*
 * users: who may connect (SCRAM keys), what each may do (permissions on
 * queue name patterns) and their quotas.
 *
 * Owns the table of users, loaded from the store at start-up, and every
 * change to it: a change is written to the store, and takes effect in
 * memory once committed. Changes run one at a time, in the order asked,
 * so that each builds its record from the one before (a change asked
 * while another commits waits for it).
 *
 * A user is reference counted: a session authenticated as it holds a
 * reference, so a deleted user stays readable (is_deleted) until its
 * sessions let go. The session layer learns of every committed change
 * through the hook set with users_set_hook, to end what the user may no
 * longer do.
 */
#ifndef RINGMQ_USERS_H
#define RINGMQ_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/group.h"
#include "store/store.h"

/* What a permission grants (the store's bits). */
#define USER_PUBLISH STORE_PERM_PUBLISH
#define USER_CONSUME STORE_PERM_CONSUME
#define USER_ADMIN   STORE_PERM_ADMIN
#define USER_ALL     (USER_PUBLISH | USER_CONSUME | USER_ADMIN)

/* PBKDF2 rounds of a user the broker makes itself (the bootstrap admin). */
#define USER_DEFAULT_ITERATIONS 4096u

struct user_perm {
	char *pattern; /* owned */
	unsigned bits; /* USER_* */
};

struct user {
	char name[STORE_USER_MAX + 1];
	uint64_t created_ms;
	uint32_t iterations;
	uint8_t salt_len;
	uint8_t salt[STORE_SALT_MAX];
	uint8_t stored_key[STORE_KEY_LEN];
	uint8_t server_key[STORE_KEY_LEN];
	struct store_quota quota;
	struct user_perm *perms; /* owned [nperms] */
	size_t nperms, capperms;
	unsigned refs;	 /* the table's, while not deleted, and sessions' */
	bool is_deleted; /* gone from the table */
	uint32_t connections; /* sessions authenticated as it */
	/* Leases its sessions hold, against quota.max_leases. */
	struct lease_quota leases;
	/* Publish rate quotas: token buckets of one second's worth, which
	 * may go below zero by one batch (a batch is never cut). */
	double msg_tokens, byte_tokens;
	uint64_t refill_ms; /* monotonic: tokens as of then */
	/* Since start, for metrics. */
	uint64_t published_msgs, published_bytes;
	uint64_t refused_rate;	      /* publishes over the rate quotas */
	uint64_t refused_connections; /* connections over max_connections */
};

struct users; /* opaque */

enum user_change_kind {
	USER_ADD,	 /* a new user: keys required; USER_EXISTS */
	USER_MODIFY,	 /* keys and/or quota limits; USER_NOT_FOUND */
	USER_DELETE,	 /* USER_NOT_FOUND */
	USER_ACL_SET,	 /* bits on pattern, replacing what was there */
	USER_ACL_DELETE, /* INVALID_ARGUMENT if nothing was on pattern */
};

/* Bits of user_change.quota_given: which limits a change sets. */
#define USER_QUOTA_CONNECTIONS 0x1u
#define USER_QUOTA_MESSAGES    0x2u
#define USER_QUOTA_BYTES       0x4u
#define USER_QUOTA_LEASES      0x8u

struct user_change {
	enum user_change_kind kind;
	char name[STORE_USER_MAX + 1];
	bool has_keys;
	uint32_t iterations;
	uint8_t salt_len;
	uint8_t salt[STORE_SALT_MAX];
	uint8_t stored_key[STORE_KEY_LEN];
	uint8_t server_key[STORE_KEY_LEN];
	unsigned quota_given; /* USER_QUOTA_* */
	struct store_quota quota;
	char pattern[STORE_NAME_MAX + 1]; /* ACL changes */
	unsigned bits;			  /* USER_ACL_SET */
};

/* A change's completion: 0, or -RMQ_E* / -errno; nothing changed then. */
typedef void (*users_done_fn)(void *ctx, int status);
/* Told of every committed change to u (u->is_deleted after a delete),
 * before the change's own completion. */
typedef void (*users_hook_fn)(void *ctx, struct user *u);

/* @return 0 or -ENOMEM. */
int users_new(struct users **out, struct store *st);
/* Frees the table; users sessions still hold are freed by their last
 * user_unref. NULL is a no-op. */
void users_free(struct users *us);
void users_set_hook(struct users *us, users_hook_fn fn, void *ctx);

/* A store_load callback (ctx: the struct users). */
int users_load(void *ctx, const struct store_user *su);

size_t users_count(const struct users *us);
/* The user called name, or NULL. */
struct user *users_find(struct users *us, const char *name);
/* Calls fn for every user, in name order. */
void users_each(struct users *us, void (*fn)(void *ctx, struct user *u),
		void *ctx);

void user_ref(struct user *u);
void user_unref(struct user *u);

/*
 * Asks for a change. @return 0 when it is under way (done runs later,
 * from a store completion, with its result), or a negative code when it
 * was refused at once (done never runs): -RMQ_EINVALID_ARGUMENT (a name,
 * pattern, key or limit outside the rules), -RMQ_EUSER_EXISTS,
 * -RMQ_EUSER_NOT_FOUND, -ENOMEM.
 */
int users_change(struct users *us, const struct user_change *ch,
		 users_done_fn done, void *ctx);

/* 1 if name is a valid user name: 1 to 128 of [A-Za-z0-9._@-]. */
int user_name_ok(const char *name);
/* 1 if pattern is a valid queue name pattern: 1 to STORE_NAME_MAX of the
 * queue name characters and "*". */
int user_pattern_ok(const char *pattern);
/* 1 if name matches pattern ("*": any run of characters). */
int user_pattern_match(const char *pattern, const char *name);

/* What u may do on queue: the union of the bits of its matching
 * permissions. */
unsigned user_perms_on(const struct user *u, const char *queue);

/* Takes msgs messages of bytes bytes from u's publish rate quotas at
 * now_ms (monotonic). @return 0 when they may go (counted), else the ms
 * to wait before the quotas have room again (nothing taken). */
uint64_t user_publish_admit(struct user *u, uint64_t msgs, uint64_t bytes,
			    uint64_t now_ms);
/* Ms until u's publish rate quotas have room again (0: now). */
uint64_t user_publish_wait(struct user *u, uint64_t now_ms);

#endif
