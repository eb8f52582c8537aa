#include "retry.hpp"

#include <boost/asio/error.hpp>

namespace mailroom::detail {

bool may_retry(error_code ec, const smtp::delivery_report* report, bool retry_unknown)
{
    if (!ec || ec == boost::asio::error::operation_aborted)
        return false;
    if (ec == error::delivery_status_unknown ||
        (report && report->outcome == smtp::outcome::unknown))
        return retry_unknown; // RFC 5321 §4.5.3.2: it may have been delivered
    if (report && report->outcome == smtp::outcome::partial)
        return false;
    if (ec == error::pool_closed || ec == error::limit_wait_too_long ||
        ec == error::cost_exceeds_burst)
        return false;
    return ec == condition::transient;
}

const smtp::reply* reply_for_limiter(const smtp::delivery_report& r)
{
    if (r.refusal)
        return &*r.refusal;
    if (r.final_reply)
        return &*r.final_reply;
    for (const auto& rc : r.recipients)
        if (rc.response.code != 0 && !rc.accepted())
            return &rc.response;
    return nullptr;
}

} // namespace mailroom::detail
