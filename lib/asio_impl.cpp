// Asio's and Asio SSL's compiled parts, once for the whole library and the programs using it
// (BOOST_ASIO_SEPARATE_COMPILATION is defined for all of them). Exported, so a shared build of
// the library serves them too.
#pragma GCC visibility push(default)
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#pragma GCC visibility pop
