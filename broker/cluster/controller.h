/*
 * controller: a broker's part in the cluster's control plane, over a
 * coordination store (coord.h), as DESIGN.md's scale-out section lays it
 * out. Keys live under /ringmq/CLUSTER/:
 *   brokers/ID          its client address; on the broker's lease
 *   controller          the controller's ID; on its lease; its create
 *                       revision is the controller's epoch
 *   queues/NAME         "partitions=N": the queue, cluster-wide
 *   parts/NAME/PPPPP    "owner=ID epoch=E": who serves the partition
 * Every broker registers and campaigns; the one whose create-if-absent
 * transaction on the controller key wins is the controller until its
 * lease expires. Each of its writes is a transaction that holds only if
 * the controller key still has the create revision it won with: a
 * controller that lost its lease, however late it notices, cannot write
 * (fencing; a lock alone is not safe, as Jepsen showed of etcd 3.4.3).
 *
 * The controller places partitions with placement.h over the live
 * brokers: a dead broker's (lease expired) go to the live ones, a new
 * broker takes its share, and a partition whose owner changes gets the
 * next epoch. Moving a live partition's data (the old owner stops
 * first, fenced by the epoch) and replication come later.
 *
 * Calls block on the store: the coordination thread's.
 */
#ifndef RINGMQ_CONTROLLER_H
#define RINGMQ_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/coord.h"

#define CLUSTER_ID_MAX	   64  /* a broker id, with its NUL */
#define CLUSTER_PREFIX_MAX 160 /* "/ringmq/CLUSTER/", with its NUL */

struct controller {
	struct coord *coord; /* borrowed */
	char prefix[CLUSTER_PREFIX_MAX];
	char id[CLUSTER_ID_MAX];
	int64_t ttl_ms;
	int64_t lease; /* 0: not registered */
	int64_t epoch; /* > 0 while this broker is the controller */
};

/* Sets c up for broker id of cluster (names: [A-Za-z0-9._-], ids up to
 * CLUSTER_ID_MAX - 1). @return 0 or -EINVAL. */
int controller_init(struct controller *c, struct coord *coord,
		    const char *cluster, const char *id, int64_t ttl_ms);

/* Registers the broker (address addr) on a new lease. */
int controller_register(struct controller *c, const char *addr);

/* Keeps the lease alive. When it had expired: the broker registers
 * again on a new one (addr) and is no longer the controller. */
int controller_keepalive(struct controller *c, const char *addr);

/* Tries to become the controller. @return 1 when it is (c->epoch set),
 * 0 when another is, or -errno. */
int controller_campaign(struct controller *c);

/* Defines queue name with partitions partitions, cluster-wide, as the
 * controller. @return 0, -EEXIST, -EPERM (not the controller), -ESTALE
 * (fenced: it no longer is), or -errno. */
int controller_queue_create(struct controller *c, const char *name,
			    uint32_t partitions);

/* As the controller, places every queue's partitions over the live
 * brokers and writes what changed in one fenced transaction.
 * @return the partitions that changed owner (>= 0), -EPERM, -ESTALE
 * (fenced: c->epoch is cleared), -EAGAIN (no live broker), or -errno. */
long controller_reconcile(struct controller *c);

/* Who owns partition part of queue: its owner's id into owner
 * (CLUSTER_ID_MAX bytes, "" for none) and its epoch. */
int controller_owner(struct controller *c, const char *queue, uint32_t part,
		     char *owner, int64_t *epoch);

#endif
