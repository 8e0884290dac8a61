/*
 * admin: administration calls of libringmq.
 */
#include "internal.h"
