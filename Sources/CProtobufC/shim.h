#ifndef PCL_CPROTOBUFC_SHIM_H
#define PCL_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
