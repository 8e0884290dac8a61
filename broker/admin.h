/*
 * admin: request handlers that read or rearrange stored messages for
 * administrators: peek, message show, dead-letter list and redrive.
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

#endif
