// SASL client mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), CRAM-MD5
// (RFC 2195), SCRAM-SHA-256 (RFC 5802, RFC 7677), XOAUTH2 (Google), OAUTHBEARER (RFC 7628).
#include "sasl.hpp"

#include "crypto.hpp"
#include "detail/base64.hpp"
#include "text.hpp"

#include <algorithm>
#include <charconv>

namespace mailroom::smtp {

std::string_view to_string(auth_mechanism m) noexcept
{
    switch (m) {
    case auth_mechanism::plain: return "PLAIN";
    case auth_mechanism::login: return "LOGIN";
    case auth_mechanism::cram_md5: return "CRAM-MD5";
    case auth_mechanism::scram_sha_256: return "SCRAM-SHA-256";
    case auth_mechanism::xoauth2: return "XOAUTH2";
    case auth_mechanism::oauthbearer: return "OAUTHBEARER";
    }
    return "";
}

std::optional<auth_mechanism> auth_mechanism_from_name(std::string_view name) noexcept
{
    for (auto m : detail::all_auth_mechanisms) {
        if (detail::iequals(to_string(m), name))
            return m;
    }
    return std::nullopt;
}

} // namespace mailroom::smtp

namespace mailroom::smtp::detail {

namespace {

error_code check_field(std::string_view s, bool required)
{
    if (required && s.empty())
        return error::invalid_credentials;
    if (has_ascii_control(s))
        return error::control_character;
    return {};
}

// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
bool is_b64token(std::string_view s) noexcept
{
    std::size_t i = 0;
    while (i < s.size() &&
           (is_alnum(s[i]) || std::string_view("-._~+/").find(s[i]) != std::string_view::npos))
        ++i;
    if (i == 0)
        return false;
    while (i < s.size() && s[i] == '=')
        ++i;
    return i == s.size();
}

// RFC 5802 §5.1 saslname: ',' and '=' escaped as "=2C" and "=3D". RFC 7628 §3.1 reuses it for
// the gs2-header's authzid.
std::string saslname(std::string_view s)
{
    std::string out;
    for (char c : s) {
        if (c == ',')
            out += "=2C";
        else if (c == '=')
            out += "=3D";
        else
            out += c;
    }
    return out;
}

std::string base64(std::string_view raw)
{
    std::string out;
    mailroom::detail::base64_append(out, raw);
    return out;
}

result<std::string> bad_challenge()
{
    return error_code(error::sasl_bad_challenge);
}

// ---- PLAIN (RFC 4616 §2): [authzid] NUL authcid NUL passwd, all at once. ------------------

class plain_client final : public sasl_client {
public:
    explicit plain_client(const sasl_credentials& c)
        : sasl_client(auth_mechanism::plain)
    {
        message_.reserve(c.authzid.size() + c.username.size() + c.password.size() + 2);
        message_ += c.authzid;
        message_ += '\0';
        message_ += c.username;
        message_ += '\0';
        message_ += c.password;
    }
    ~plain_client() override { cleanse(message_); }

    std::optional<std::string> initial_response() const override { return message_; }
    // Nothing follows the initial response; a challenge after it is the server's mistake.
    result<std::string> respond(std::string_view) override { return bad_challenge(); }
    error_code succeeded() const override { return {}; }

private:
    std::string message_;
};

// ---- LOGIN: the server prompts "Username:", then "Password:". The prompts' text varies
// between servers, so the order decides, not the words. ---------------------------------------

class login_client final : public sasl_client {
public:
    explicit login_client(const sasl_credentials& c)
        : sasl_client(auth_mechanism::login)
        , username_(c.username)
        , password_(c.password)
    {
    }
    ~login_client() override { cleanse(password_); }

    std::optional<std::string> initial_response() const override { return std::nullopt; }
    result<std::string> respond(std::string_view) override
    {
        switch (step_++) {
        case 0: return username_;
        case 1: return password_;
        default: return bad_challenge();
        }
    }
    error_code succeeded() const override
    {
        return step_ >= 2 ? error_code() : error_code(error::sasl_incomplete);
    }

private:
    std::string username_;
    std::string password_;
    int step_ = 0;
};

// ---- CRAM-MD5 (RFC 2195 §2): username SP hex(HMAC-MD5(password, challenge)). ----------------

class cram_md5_client final : public sasl_client {
public:
    explicit cram_md5_client(const sasl_credentials& c)
        : sasl_client(auth_mechanism::cram_md5)
        , username_(c.username)
        , password_(c.password)
    {
    }
    ~cram_md5_client() override { cleanse(password_); }

    std::optional<std::string> initial_response() const override { return std::nullopt; }
    result<std::string> respond(std::string_view challenge) override
    {
        if (done_ || challenge.empty())
            return bad_challenge();
        auto mac = hmac_md5(password_, challenge);
        if (!mac)
            return error_code(error::auth_mechanism_unavailable);
        static constexpr char hex[] = "0123456789abcdef";
        std::string out = username_;
        out += ' ';
        for (unsigned char b : *mac) {
            out += hex[b >> 4];
            out += hex[b & 15];
        }
        done_ = true;
        return out;
    }
    error_code succeeded() const override
    {
        return done_ ? error_code() : error_code(error::sasl_incomplete);
    }

private:
    std::string username_;
    std::string password_;
    bool done_ = false;
};

// ---- SCRAM-SHA-256 (RFC 5802 §3, RFC 7677), without channel binding. -----------------------

class scram_client final : public sasl_client {
public:
    scram_client(const sasl_credentials& c, std::string nonce, const sasl_options& o)
        : sasl_client(auth_mechanism::scram_sha_256)
        , password_(c.password)
        , nonce_(std::move(nonce))
        , min_iterations_(o.scram_min_iterations)
        , max_iterations_(o.scram_max_iterations)
    {
        // gs2-header "n,," says the client doesn't support channel binding (RFC 5802 §7): it
        // never offers SCRAM-SHA-256-PLUS, so a server can't be tricked into thinking it did.
        gs2_header_ = "n,";
        if (!c.authzid.empty())
            gs2_header_ += "a=" + saslname(c.authzid);
        gs2_header_ += ',';
        client_first_bare_ = "n=" + saslname(c.username) + ",r=" + nonce_;
    }
    ~scram_client() override
    {
        cleanse(password_);
        cleanse(server_key_);
    }

    std::optional<std::string> initial_response() const override
    {
        return gs2_header_ + client_first_bare_;
    }

    result<std::string> respond(std::string_view challenge) override
    {
        switch (state_) {
        case state::initial: return client_final(challenge);
        case state::sent_proof: return verify(challenge);
        case state::verified:
        case state::failed: break;
        }
        return bad_challenge();
    }

    error_code succeeded() const override
    {
        // Success without the server's signature would skip the mutual authentication that is
        // SCRAM's point (RFC 5802 §9): a fake server could accept anything.
        return state_ == state::verified ? error_code() : error_code(error::sasl_incomplete);
    }

private:
    enum class state { initial, sent_proof, verified, failed };

    // Splits "k=v,k=v" into attributes; nothing if any part isn't `letter=value`.
    static std::optional<std::vector<std::pair<char, std::string_view>>>
    attributes(std::string_view s)
    {
        std::vector<std::pair<char, std::string_view>> out;
        std::size_t pos = 0;
        while (true) {
            const std::size_t comma = s.find(',', pos);
            const std::string_view part =
                comma == std::string_view::npos ? s.substr(pos) : s.substr(pos, comma - pos);
            if (part.size() < 2 || !is_alpha(part[0]) || part[1] != '=')
                return std::nullopt;
            out.emplace_back(part[0], part.substr(2));
            if (comma == std::string_view::npos)
                return out;
            pos = comma + 1;
        }
    }

    result<std::string> fail_with(error e)
    {
        state_ = state::failed;
        return error_code(e);
    }

    // RFC 5802 §7: server-first-message = [reserved-mext ","] nonce "," salt ","
    // iteration-count ["," extensions].
    result<std::string> client_final(std::string_view server_first)
    {
        if (has_ascii_control(server_first) || !is_ascii(server_first))
            return fail_with(error::sasl_bad_challenge);
        auto attrs = attributes(server_first);
        // RFC 5802 §5.1: an "m" attribute is a mandatory extension we don't know: fail.
        if (!attrs || attrs->size() < 3 || (*attrs)[0].first != 'r' || (*attrs)[1].first != 's' ||
            (*attrs)[2].first != 'i')
            return fail_with(error::sasl_bad_challenge);
        const std::string_view nonce = (*attrs)[0].second;
        // The server's nonce extends ours (§5.1); a server that doesn't echo ours is answering
        // someone else's exchange.
        if (nonce.size() <= nonce_.size() || nonce.substr(0, nonce_.size()) != nonce_)
            return fail_with(error::sasl_bad_challenge);
        auto salt = mailroom::detail::base64_decode((*attrs)[1].second);
        if (!salt || salt->empty())
            return fail_with(error::sasl_bad_challenge);
        const std::string_view iter_text = (*attrs)[2].second;
        unsigned iterations = 0;
        auto [end, ec] =
            std::from_chars(iter_text.data(), iter_text.data() + iter_text.size(), iterations);
        if (ec != std::errc() || end != iter_text.data() + iter_text.size() || iter_text.empty() ||
            iter_text[0] == '0' || iterations < min_iterations_ || iterations > max_iterations_)
            return fail_with(error::sasl_bad_challenge);

        // SaltedPassword := Hi(Normalize(password), salt, i); ClientKey := HMAC(SaltedPassword,
        // "Client Key"); StoredKey := H(ClientKey); AuthMessage := client-first-message-bare +
        // "," + server-first-message + "," + client-final-message-without-proof;
        // ClientSignature := HMAC(StoredKey, AuthMessage); ClientProof := ClientKey XOR
        // ClientSignature; ServerKey := HMAC(SaltedPassword, "Server Key");
        // ServerSignature := HMAC(ServerKey, AuthMessage). (RFC 5802 §3.)
        auto salted = pbkdf2_sha256(password_, *salt, iterations);
        cleanse(password_); // not needed again
        if (!salted)
            return fail_with(error::auth_mechanism_unavailable);
        auto client_key = hmac_sha256(*salted, "Client Key");
        auto server_key = hmac_sha256(*salted, "Server Key");
        cleanse(*salted);
        if (!client_key || !server_key)
            return fail_with(error::auth_mechanism_unavailable);
        auto stored_key = sha256(*client_key);
        std::string without_proof = "c=" + base64(gs2_header_) + ",r=";
        without_proof += nonce;
        std::string auth_message = client_first_bare_;
        auth_message += ',';
        auth_message += server_first;
        auth_message += ',';
        auth_message += without_proof;
        auto client_signature = stored_key ? hmac_sha256(*stored_key, auth_message) : std::nullopt;
        auto server_signature = hmac_sha256(*server_key, auth_message);
        cleanse(*server_key);
        if (!client_signature || !server_signature) {
            cleanse(*client_key);
            return fail_with(error::auth_mechanism_unavailable);
        }
        std::string proof = *client_key;
        cleanse(*client_key);
        for (std::size_t i = 0; i < proof.size(); ++i)
            proof[i] = static_cast<char>(proof[i] ^ (*client_signature)[i]);
        server_key_ = std::move(*server_signature); // kept to compare with the server's v=
        state_ = state::sent_proof;
        return without_proof + ",p=" + base64(proof);
    }

    // RFC 5802 §7: server-final-message = (server-error / verifier) ["," extensions].
    result<std::string> verify(std::string_view server_final)
    {
        if (has_ascii_control(server_final) || !is_ascii(server_final))
            return fail_with(error::sasl_bad_challenge);
        auto attrs = attributes(server_final);
        if (!attrs)
            return fail_with(error::sasl_bad_challenge);
        if ((*attrs)[0].first == 'e') {
            server_error_ = std::string((*attrs)[0].second);
            return fail_with(error::sasl_server_error);
        }
        if ((*attrs)[0].first != 'v')
            return fail_with(error::sasl_bad_challenge);
        auto signature = mailroom::detail::base64_decode((*attrs)[0].second);
        if (!signature || signature->size() != server_key_.size())
            return fail_with(error::sasl_bad_challenge); // not a SHA-256 signature at all
        if (!constant_time_equal(*signature, server_key_))
            return fail_with(error::scram_server_signature_mismatch);
        state_ = state::verified;
        // RFC 4954 §4: SMTP has no success-with-data, so the server sent its final message as a
        // challenge and waits for an empty response before its 235.
        return std::string();
    }

    std::string password_;
    std::string nonce_;
    std::string gs2_header_;
    std::string client_first_bare_;
    std::string server_key_; // after the proof: the expected ServerSignature
    unsigned min_iterations_;
    unsigned max_iterations_;
    state state_ = state::initial;
};

// ---- XOAUTH2 and OAUTHBEARER: a bearer token in the initial response. A challenge after it
// carries the server's error (JSON); the exchange must still be finished by the client before
// the server sends its failure reply. ---------------------------------------------------------

class oauth_client final : public sasl_client {
public:
    oauth_client(auth_mechanism m, const sasl_credentials& c)
        : sasl_client(m)
    {
        if (m == auth_mechanism::xoauth2) {
            // Google's format: "user=" {User} ^A "auth=Bearer " {Token} ^A ^A.
            message_ = "user=" + c.username +
                       "\x01"
                       "auth=Bearer " +
                       c.bearer_token + "\x01\x01";
        } else {
            // RFC 7628 §3.1: gs2-header kvsep *kvpair kvsep, kvpair = key "=" value kvsep.
            message_ = "n,";
            if (!c.username.empty())
                message_ += "a=" + saslname(c.username);
            message_ += ",\x01";
            if (!c.host.empty())
                message_ += "host=" + c.host + "\x01";
            if (c.port)
                message_ += "port=" + std::to_string(c.port) + "\x01";
            message_ += "auth=Bearer " + c.bearer_token + "\x01\x01";
        }
    }
    ~oauth_client() override { cleanse(message_); }

    std::optional<std::string> initial_response() const override { return message_; }

    result<std::string> respond(std::string_view challenge) override
    {
        if (errored_)
            return bad_challenge();
        errored_ = true;
        server_error_ = std::string(challenge);
        // RFC 7628 §3.2.3: the client answers the error challenge with a single kvsep (%x01),
        // and the server then fails the exchange. Google's XOAUTH2 documentation asks for an
        // empty response instead, and that is what Gmail and Outlook expect.
        if (mechanism() == auth_mechanism::oauthbearer)
            return std::string("\x01");
        return std::string();
    }

    error_code succeeded() const override
    {
        // Success after an error challenge contradicts the server's own message.
        return errored_ ? error_code(error::sasl_server_error) : error_code();
    }

private:
    std::string message_;
    bool errored_ = false;
};

bool is_printable_ascii(std::string_view s) noexcept
{
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7F; });
}

} // namespace

result<std::unique_ptr<sasl_client>> make_sasl_client(auth_mechanism m, const sasl_credentials& c,
                                                      const sasl_options& o)
{
    switch (m) {
    case auth_mechanism::plain:
        // RFC 4616 §2: authcid and passwd are 1*SAFE, SAFE being any UTF-8 but NUL. We refuse
        // every control: CR or LF in a password is a paste accident, not a secret.
        for (auto [s, req] : {std::pair{std::string_view(c.username), true},
                              std::pair{std::string_view(c.password), true},
                              std::pair{std::string_view(c.authzid), false}}) {
            if (auto ec = check_field(s, req))
                return ec;
        }
        return std::make_unique<plain_client>(c);
    case auth_mechanism::login:
    case auth_mechanism::cram_md5:
        for (auto s : {std::string_view(c.username), std::string_view(c.password)}) {
            if (auto ec = check_field(s, true))
                return ec;
        }
        if (m == auth_mechanism::login)
            return std::make_unique<login_client>(c);
        // Probe now so a provider without MD5 (FIPS) shows up as an unavailable mechanism
        // before anything is sent.
        if (!hmac_md5("k", "d"))
            return error_code(error::auth_mechanism_unavailable);
        return std::make_unique<cram_md5_client>(c);
    case auth_mechanism::scram_sha_256: {
        for (auto [s, req] : {std::pair{std::string_view(c.username), true},
                              std::pair{std::string_view(c.password), true},
                              std::pair{std::string_view(c.authzid), false}}) {
            if (auto ec = check_field(s, req))
                return ec;
            if (!is_ascii(s))
                return error_code(error::saslprep_unsupported);
        }
        std::string nonce = o.scram_client_nonce;
        if (nonce.empty()) {
            auto r = random_bytes(24);
            if (!r)
                return error_code(error::auth_mechanism_unavailable);
            nonce = base64(*r);
        } else if (!is_printable_ascii(nonce) || nonce.find(',') != std::string::npos) {
            return error_code(error::invalid_credentials); // RFC 5802 §7: printable, no ','
        }
        return std::make_unique<scram_client>(c, std::move(nonce), o);
    }
    case auth_mechanism::xoauth2:
    case auth_mechanism::oauthbearer:
        if (auto ec = check_field(c.username, m == auth_mechanism::xoauth2))
            return ec;
        if (auto ec = check_field(c.host, false))
            return ec;
        if (has_ascii_control(c.bearer_token))
            return error_code(error::control_character);
        if (!is_b64token(c.bearer_token))
            return error_code(error::invalid_credentials);
        return std::make_unique<oauth_client>(m, c);
    }
    return error_code(error::auth_mechanism_unavailable);
}

result<auth_mechanism> choose_mechanism(const std::vector<std::string>& offered,
                                        const sasl_credentials& c, bool tls_active,
                                        std::span<const auth_mechanism> allowed)
{
    const bool have_token = !c.bearer_token.empty();
    const bool have_password = !c.username.empty() && !c.password.empty();
    for (auto m : all_auth_mechanisms) {
        if (std::find(allowed.begin(), allowed.end(), m) == allowed.end())
            continue;
        const bool token_mech = m == auth_mechanism::oauthbearer || m == auth_mechanism::xoauth2;
        if (token_mech ? !have_token : !have_password)
            continue;
        const bool safe_in_clear =
            m == auth_mechanism::scram_sha_256 || m == auth_mechanism::cram_md5;
        if (!tls_active && !safe_in_clear)
            continue;
        const auto name = to_string(m);
        if (std::any_of(offered.begin(), offered.end(),
                        [&](const std::string& o) { return iequals(o, name); }))
            return m;
    }
    return error_code(error::auth_mechanism_unavailable);
}

std::string redact_client_line(std::string_view line, bool sasl_response)
{
    if (line.size() >= 2 && line.substr(line.size() - 2) == "\r\n")
        line.remove_suffix(2);
    if (sasl_response)
        return line == "*" ? std::string(line) : std::string("[redacted]");
    if (line.size() < 5 || !iequals(line.substr(0, 5), "AUTH "))
        return std::string(line);
    // AUTH mechanism [initial-response]: keep the mechanism, hide the rest.
    const std::size_t mech_end = line.find(' ', 5);
    if (mech_end == std::string_view::npos)
        return std::string(line);
    return std::string(line.substr(0, mech_end)) + " [redacted]";
}

} // namespace mailroom::smtp::detail
