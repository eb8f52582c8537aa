// Boost.JSON's implementation, compiled once for every module that parses or writes JSON
// (auth: token responses, service-account keys). Boost 1.81 ships it as a compiled library
// Debian packages separately; its header-only form needs no package beyond libboost1.81-dev.
#include <boost/json/src.hpp>
