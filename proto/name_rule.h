/*
 * name_rule: DESIGN.md's rule for queue and group names, one copy for the
 * broker, the library and the CLI (each refuses a bad name itself).
 */
#ifndef RINGMQ_NAME_RULE_H
#define RINGMQ_NAME_RULE_H

#include <stddef.h>
#include <string.h>

#define NAME_RULE_MAX 196 /* room for ".dlq" within the stored 200 */

/* 1 if name[0 .. len) matches [A-Za-z0-9][A-Za-z0-9._-]{0,195}. */
static inline int
name_rule_ok_n(const char *name, size_t len)
{
	if (len == 0 || len > NAME_RULE_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		int is_alnum = (ch >= 'a' && ch <= 'z') ||
			       (ch >= 'A' && ch <= 'Z') ||
			       (ch >= '0' && ch <= '9');

		if (!is_alnum &&
		    (i == 0 || (ch != '.' && ch != '_' && ch != '-')))
			return 0;
	}
	return 1;
}

/* 1 if name matches the rule (queue and group names). */
static inline int
name_rule_ok(const char *name)
{
	return name_rule_ok_n(name, strlen(name));
}

/* 1 if name may name a queue: a name of the rule, or one followed by
 * ".dlq" (the dead-letter queue of the longest name). */
static inline int
name_rule_queue_ok(const char *name)
{
	size_t len = strlen(name);

	return name_rule_ok_n(name, len) ||
	       (len > 4 && memcmp(name + len - 4, ".dlq", 4) == 0 &&
		name_rule_ok_n(name, len - 4));
}

#endif
