// A program that compiles Asio once itself, as Boost.MySQL and Boost.Redis users do: every
// translation unit of it defines BOOST_ASIO_SEPARATE_COMPILATION, and this one holds Asio's
// compiled parts. mailroom must link into it without multiple or missing definitions.
#include <boost/asio/impl/src.hpp>
