/* * admin: request handlers for administrators: queue delete, describe and
 * purge; group create, delete, list, describe and reset; peek, message
 * show, dead-letter list and redrive; stats.
 *
 * Reached from conn.c's handler table; answers through conn.h. Reads go
 * through the loop thread's short read transaction and are packed into
 * the answer before it ends.
 */
#ifndef RINGMQ_ADMIN_H
#define RINGMQ_ADMIN_H

#include "ringmq.pb-c.h"

struct conn;

void admin_peek(struct conn *c, const Ringmq__Frame *f);
void admin_message_show(struct conn *c, const Ringmq__Frame *f);
void admin_dead_letter_list(struct conn *c, const Ringmq__Frame *f);
void admin_dead_letter_redrive(struct conn *c, const Ringmq__Frame *f);
void admin_queue_delete(struct conn *c, const Ringmq__Frame *f);
void admin_queue_describe(struct conn *c, const Ringmq__Frame *f);
void admin_purge(struct conn *c, const Ringmq__Frame *f);
void admin_group_create(struct conn *c, const Ringmq__Frame *f);
void admin_group_delete(struct conn *c, const Ringmq__Frame *f);
void admin_group_list(struct conn *c, const Ringmq__Frame *f);
void admin_group_describe(struct conn *c, const Ringmq__Frame *f);
void admin_group_reset(struct conn *c, const Ringmq__Frame *f);
void admin_stats(struct conn *c, const Ringmq__Frame *f);
void admin_backup(struct conn *c, const Ringmq__Frame *f);

#endif
