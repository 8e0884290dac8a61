/*
 * fields: the field numbers of the messages that are encoded or decoded
 * by hand, for speed, instead of by protobuf-c: the broker's encoders of
 * Delivery, PublishOk and LeaseResult (broker/req/wire.c) and the
 * library's decoders of the same (libclient/frame.c), with the Message
 * and Header inside a Delivery.
 *
 * They must equal ringmq.proto's numbers. The Frame bodies are checked at
 * compile time against the generated RINGMQ__FRAME__BODY_* values (below);
 * every other number is checked against protobuf-c's descriptors by
 * tests/unit/test_fields.c. Changing a number in ringmq.proto (never done
 * to a released field) fails one or the other.
 */
#ifndef RINGMQ_FIELDS_H
#define RINGMQ_FIELDS_H

#include "ringmq.pb-c.h"

/* Frame */
#define FIELD_FRAME_REQUEST_ID	 1
#define FIELD_FRAME_PUBLISH_OK	 31
#define FIELD_FRAME_DELIVERY	 44
#define FIELD_FRAME_LEASE_RESULT 49

/* Delivery */
#define FIELD_DELIVERY_SUBSCRIPTION	  1
#define FIELD_DELIVERY_LEASE_ID		  2
#define FIELD_DELIVERY_PARTITION	  3
#define FIELD_DELIVERY_OFFSET		  4
#define FIELD_DELIVERY_DELIVERY_COUNT	  5
#define FIELD_DELIVERY_LEASE_REMAINING_MS 6
#define FIELD_DELIVERY_MESSAGE		  7
#define FIELD_DELIVERY_PUBLISH_MS	  8

/* Message */
#define FIELD_MESSAGE_PAYLOAD	    1
#define FIELD_MESSAGE_KEY	    2
#define FIELD_MESSAGE_HEADERS	    3
#define FIELD_MESSAGE_DELIVER_AT_MS 4
#define FIELD_MESSAGE_DELAY_MS	    5
#define FIELD_MESSAGE_DEDUP_ID	    6
#define FIELD_MESSAGE_PARTITION	    7

/* Header */
#define FIELD_HEADER_NAME  1
#define FIELD_HEADER_VALUE 2

/* PublishOk, PublishResult */
#define FIELD_PUBLISH_OK_RESULTS       1
#define FIELD_PUBLISH_RESULT_CODE      1
#define FIELD_PUBLISH_RESULT_PARTITION 2
#define FIELD_PUBLISH_RESULT_OFFSET    3
#define FIELD_PUBLISH_RESULT_DUPLICATE 4
#define FIELD_PUBLISH_RESULT_MESSAGE   5
#define FIELD_PUBLISH_RESULT_OWNER     6
#define FIELD_PUBLISH_RESULT_EPOCH     7

/* LeaseResult */
#define FIELD_LEASE_RESULT_CODES	1
#define FIELD_LEASE_RESULT_REMAINING_MS 2

_Static_assert(FIELD_FRAME_PUBLISH_OK == RINGMQ__FRAME__BODY_PUBLISH_OK,
	       "Frame.publish_ok");
_Static_assert(FIELD_FRAME_DELIVERY == RINGMQ__FRAME__BODY_DELIVERY,
	       "Frame.delivery");
_Static_assert(FIELD_FRAME_LEASE_RESULT == RINGMQ__FRAME__BODY_LEASE_RESULT,
	       "Frame.lease_result");

/* The hand encoders write one-byte keys: every field inside the bodies
 * is below 16. The Delivery decoder's bitmask of required fields relies
 * on 1..7 being exactly those. */
_Static_assert(FIELD_DELIVERY_PUBLISH_MS < 16 && FIELD_MESSAGE_PARTITION < 16 &&
		       FIELD_PUBLISH_RESULT_EPOCH < 16,
	       "one-byte keys");
_Static_assert(FIELD_DELIVERY_SUBSCRIPTION == 1 && FIELD_DELIVERY_MESSAGE == 7,
	       "Delivery's required fields are 1..7");

#endif
