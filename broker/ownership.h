/*
 * ownership: a cluster view (cluster.h) turned into what the request
 * floor reads on the loop thread: each queue's owner table (queue.h,
 * struct part_owner), which refuses publishes to partitions served
 * elsewhere with NOT_OWNER, and the broker list Metadata answers with.
 * Queues defined elsewhere in the cluster are created here too (with
 * the default policies), so that every broker knows every queue and
 * can point a client to its owners.
 *
 * Owner addresses are kept for the whole run, so that an answer built
 * before a new view (a publish refused while others in its batch
 * commit) still points at valid text.
 */
#ifndef RINGMQ_OWNERSHIP_H
#define RINGMQ_OWNERSHIP_H

struct cluster_view;
struct queues;
struct req_cluster;

struct ownership;

/* @return a new table for this broker (id, copied) in the cluster called
 * name (borrowed for its life), or NULL when out of memory. */
struct ownership *ownership_new(const char *name, const char *id);

/* Takes every queue's owner table away first. NULL is a no-op. */
void ownership_free(struct ownership *o, struct queues *qs);

/* Applies view v to the queues of qs (v is only read during the call).
 * @return 0, or -ENOMEM (the tables stay as they were). */
int ownership_apply(struct ownership *o, const struct cluster_view *v,
		    struct queues *qs);

/* The cluster for Metadata, valid until the next apply or free. */
const struct req_cluster *ownership_cluster(const struct ownership *o);

#endif
