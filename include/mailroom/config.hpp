// mailroom: symbol export for the compiled library (built with hidden visibility).
#pragma once

#if defined(MAILROOM_BUILDING) || !defined(MAILROOM_STATIC)
#define MAILROOM_API __attribute__((visibility("default")))
#else
#define MAILROOM_API
#endif
