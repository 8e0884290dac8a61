/*
 * message.c: requests about one stored message, named by queue, partition
 * and offset (cancel; show and peek belong here too).
 *
 * The message being published (ringmq_message, publish.c) is a different
 * object: these calls take a client and a position, not a message handle.
 */
#include "internal.h"

int
ringmq_message_cancel(ringmq_client *c, const char *queue, uint32_t partition,
		      uint64_t offset)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__MessageCancel mc = RINGMQ__MESSAGE_CANCEL__INIT;
	Ringmq__Frame *resp;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (queue == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL queue name");
	mc.queue = (char *)queue; /* packing only reads it */
	mc.partition = partition;
	mc.offset = offset;
	f.body_case = RINGMQ__FRAME__BODY_MESSAGE_CANCEL;
	f.message_cancel = &mc;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_DONE, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	frame_free(resp);
	return RINGMQ_OK;
}
