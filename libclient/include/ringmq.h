#ifndef RINGMQ_H
#define RINGMQ_H
#endif
