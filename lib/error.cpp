#include <mailroom/error.hpp>

namespace mailroom {

namespace {

class library_category_impl final : public boost::system::error_category {
public:
    // A fixed id keeps categories equal across shared-library copies.
    constexpr library_category_impl() noexcept
        : error_category(0x6d61696c726f6f6dULL)
    {
    }
    const char* name() const noexcept override { return "mailroom"; }

    std::string message(int ev) const override
    {
        switch (static_cast<error>(ev)) {
        case error::invalid_address: return "invalid email address";
        case error::address_too_long: return "email address too long";
        case error::invalid_domain: return "invalid domain";
        case error::control_character: return "control character in text";
        case error::invalid_utf8: return "text is not valid UTF-8";
        case error::invalid_header_name: return "invalid header field name";
        case error::reserved_header: return "header is set by the message builder";
        case error::invalid_message_id: return "invalid Message-ID";
        case error::invalid_content_id: return "invalid Content-ID";
        case error::invalid_uri: return "invalid URI";
        case error::invalid_filename: return "invalid attachment file name";
        case error::invalid_content_type: return "invalid media type";
        case error::missing_from: return "message has no From address";
        case error::no_recipients: return "message has no recipients";
        case error::file_unreadable: return "file cannot be read";
        case error::file_changed: return "file changed while the message was written";
        case error::line_too_long: return "line longer than 998 octets";
        }
        return "unknown mailroom error";
    }

    boost::system::error_condition default_error_condition(int ev) const noexcept override
    {
        switch (static_cast<error>(ev)) {
        case error::file_unreadable:
        case error::file_changed:
            return make_error_condition(condition::permanent);
        default:
            return make_error_condition(condition::invalid_input);
        }
    }
};

class condition_category_impl final : public boost::system::error_category {
public:
    constexpr condition_category_impl() noexcept
        : error_category(0x6d61696c726f6f6eULL)
    {
    }
    const char* name() const noexcept override { return "mailroom.condition"; }
    std::string message(int ev) const override
    {
        switch (static_cast<condition>(ev)) {
        case condition::invalid_input: return "invalid input";
        case condition::transient: return "transient failure";
        case condition::permanent: return "permanent failure";
        case condition::timeout: return "timed out";
        }
        return "unknown condition";
    }
};

constexpr library_category_impl library_instance;
constexpr condition_category_impl condition_instance;

} // namespace

const boost::system::error_category& library_category() noexcept { return library_instance; }
const boost::system::error_category& condition_category() noexcept { return condition_instance; }

std::string diagnostics::to_string() const
{
    if (field.empty())
        return detail;
    if (detail.empty())
        return field;
    return field + ": " + detail;
}

} // namespace mailroom
