// mailroom: symbol export for the compiled library (built with hidden visibility).
#pragma once

/// @file
/// Symbol export: the library is built with hidden visibility, and MAILROOM_API marks what it
/// exports.

#if defined(MAILROOM_BUILDING) || !defined(MAILROOM_STATIC)
/// Marks a declaration the compiled library exports (default visibility). Empty for a program
/// that defines MAILROOM_STATIC.
#define MAILROOM_API __attribute__((visibility("default")))
#else
#define MAILROOM_API
#endif
