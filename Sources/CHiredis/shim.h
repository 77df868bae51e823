#ifndef PCL_CHIREDIS_SHIM_H
#define PCL_CHIREDIS_SHIM_H
// hiredis 0.14 (Debian 12): the blocking API only. Swift cannot call the
// variadic redisCommand, so callers use redisCommandArgv and
// redisAppendCommandArgv + redisGetReply.
#include <hiredis/hiredis.h>
#endif
