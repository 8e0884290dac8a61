/*
 * policy_rule: limits of queue policies the broker enforces, one copy for
 * the broker, the library and the CLI (each refuses a bad setting itself,
 * the CLI before connecting).
 */
#ifndef RINGMQ_POLICY_RULE_H
#define RINGMQ_POLICY_RULE_H

#include <stdint.h>

/* Longest time setting (lease, max lease, dedup window), ms: the broker
 * adds these to its clocks and to each other in 64 bits, so they stay
 * far below the top (about 146 million years). */
#define POLICY_RULE_MAX_MS (UINT64_MAX / 4)

#endif
