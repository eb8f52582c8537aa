// Precompiled header for the library's translation units that use Asio (header-only, so this
// is where most of their compile time goes). Only those: the rest of the library, mime above
// all, must build without Asio.
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
