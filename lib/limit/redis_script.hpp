// Private: the shared limiter's Lua code (redis_script.cpp) and the names it is loaded under.
#pragma once

#include <string>

namespace mailroom::limit::detail {

/// The function library's name, and its functions'. The version is in the names: processes
/// of different versions sharing one Redis each call their own.
inline constexpr const char* library_name = "mailroom_limit_1";
inline constexpr const char* acquire_function = "mailroom_acquire_1";
inline constexpr const char* refund_function = "mailroom_refund_1";
inline constexpr const char* signal_function = "mailroom_signal_1";

/// The three calls the store makes.
enum class script_call { acquire, refund, signal };

/// The Lua body shared by both forms.
const std::string& script_body();
/// `#!lua name=...` + the body + the register_function calls: for FUNCTION LOAD.
const std::string& function_library();
/// The body + `return <call>(KEYS, ARGV)`: for EVAL / EVALSHA.
const std::string& eval_script(script_call c);
/// The function's name for FCALL.
const char* function_name(script_call c) noexcept;

} // namespace mailroom::limit::detail
