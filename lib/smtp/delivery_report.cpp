// mailroom::smtp::delivery_report's vocabulary.
#include <mailroom/smtp/delivery_report.hpp>

namespace mailroom::smtp {

std::string_view to_string(outcome o) noexcept
{
    switch (o) {
    case outcome::delivered: return "delivered";
    case outcome::partial: return "partial";
    case outcome::failed: return "failed";
    case outcome::unknown: return "unknown";
    }
    return "failed";
}

} // namespace mailroom::smtp
