/*
 * cluster: a broker's membership in a cluster (cluster mode), on its own
 * thread, the coordination thread: it registers the broker in etcd on a
 * lease and keeps it alive, writes the queue definitions the broker
 * hands it, campaigns to be the controller and, while it is, places the
 * partitions (controller.h); and it reads the cluster's state (brokers,
 * controller, queues, partition owners) into a view the event loop takes
 * when the thread's eventfd says a new one is there. The loop never
 * waits on etcd.
 *
 * This is the first part of scale-out: partitions are placed and the
 * placement is known to every broker; serving only owned partitions
 * (NOT_OWNER), Metadata for clients and moving a partition's data come
 * next.
 */
#ifndef RINGMQ_CLUSTER_H
#define RINGMQ_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/controller.h"

struct cluster_cfg {
	const char *name;      /* the cluster's */
	const char *broker_id; /* this broker's, unique in the cluster */
	const char *advertise; /* HOST:PORT clients reach it at */
	const char *etcd;      /* endpoints, comma-separated */
	const char *etcd_user, *etcd_password; /* NULL: etcd's auth off */
	const char *etcd_ca;		       /* NULL: the system's CAs */
	int64_t lease_ms;
};

struct cluster_broker {
	char id[CLUSTER_ID_MAX];
	char addr[256];
	size_t partitions; /* it owns */
};

struct cluster_queue {
	char name[256];
	uint32_t partitions;
	int *owner;	/* owned [partitions]: index into brokers, -1 none */
	int64_t *epoch; /* owned [partitions] */
};

/* What the cluster looked like at a read; immutable once published. */
struct cluster_view {
	int64_t rev;			 /* etcd's revision of the read */
	char controller[CLUSTER_ID_MAX]; /* "" none */
	int is_controller;		 /* this broker */
	int64_t epoch;			 /* the controller's */
	struct cluster_broker *brokers;	 /* owned [nbrokers], by id */
	size_t nbrokers;
	int self; /* this broker's index in brokers; -1 not registered */
	struct cluster_queue *queues; /* owned [nqueues], by name */
	size_t nqueues;
	size_t partitions; /* of every queue */
	size_t owned;	   /* of them, this broker's */
	uint64_t read_ms;  /* wall clock */
};

struct cluster;

/* Starts the coordination thread. *efd: an eventfd readable when a new
 * view is there (the caller's loop reads it; cluster owns it).
 * @return 0, or -EINVAL (a setting), -ENOMEM, -errno. */
int cluster_start(struct cluster **out, const struct cluster_cfg *cfg,
		  int *efd);

/* Stops the thread, ending the broker's lease so that the others learn
 * at once that it left, and frees everything. NULL is a no-op. */
void cluster_stop(struct cluster *c);

/* Hands queue name (partitions) to the thread, which defines it
 * cluster-wide (the first definition of a name stands). Never blocks on
 * etcd. @return 0 or -ENOMEM. */
int cluster_define_queue(struct cluster *c, const char *name,
			 uint32_t partitions);

/* The latest view, which the caller now owns (cluster_view_free), or
 * NULL when none came since the last call. */
struct cluster_view *cluster_take_view(struct cluster *c);
void cluster_view_free(struct cluster_view *v);

/* This broker's id. */
const char *cluster_broker_id(const struct cluster *c);

#endif
