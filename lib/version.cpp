#include <mailroom/version.hpp>

namespace mailroom {

const char* library_version() noexcept
{
    return MAILROOM_VERSION_STRING;
}

} // namespace mailroom
