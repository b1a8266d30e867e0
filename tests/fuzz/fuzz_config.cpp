// libFuzzer entry point for reservoir::pg::Config. The input is read as a URL
// or key=value string, and as an environment (one variable per line). A parser
// may throw ConfigError only: anything else escapes and crashes. A password
// planted next to the input must never survive redact() nor reach an error
// message, and redacted_url() must parse again.
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//       tests/fuzz/fuzz_config.cpp -o fuzz_config && ./fuzz_config tests/fuzz/corpus/config

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include <reservoir/pg/config.hpp>

namespace {

using reservoir::ConfigError;
using reservoir::pg::Config;
using reservoir::pg::redact;

constexpr std::string_view secret = "Zx9-SECRET-9xZ";

[[noreturn]] void fail(const char* what, std::string_view text) {
    std::fprintf(stderr, "%s: [%.*s]\n", what, int(text.size()), text.data());
    std::abort();
}

void require_hidden(std::string_view text, const char* where) {
    if (text.find(secret) != std::string_view::npos) fail(where, text);
}

// Builds a Config with `make`, uses all of it, and returns ConfigError's message ("" if none).
template <class Make>
std::string exercise(Make make) {
    try {
        const Config c = make();
        (void)c.keywords();
        (void)redact(c.url);
        const auto shown = c.redacted_url();
        require_hidden(shown, "redacted_url()");
        try {
            (void)Config::from_url(shown);
        } catch (const ConfigError& e) {
            fail(e.what(), shown);  // redacted_url() wrote a URL from_url rejects
        }
        return {};
    } catch (const ConfigError& e) {
        return e.what();
    }
}

Config from_env(const std::map<std::string, std::string>& env) {
    return Config::from_env([&](const char* name) -> const char* {
        const auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    });
}

constexpr const char* variables[] = {
    "DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_POOL_MIN", "DB_POOL_MAX",
    "DB_IDLE_TIMEOUT_MS", "DB_POOL_IDLE_MS", "DB_CONNECTION_TIMEOUT_MS", "DB_POOL_CONN_TIMEOUT_MS",
    "DB_ACQUIRE_TIMEOUT_MS", "DB_STATEMENT_TIMEOUT_MS", "DB_APPLICATION_NAME", "DB_SSL", "DATABASE_SSL",
    "DB_POOLER", "DB_PROFILE"};

// Each line is one variable: its first byte picks the name (byte % 18: 'H' is
// DATABASE_URL, 'I' DB_HOST, ... 'Y' DB_PROFILE), the rest is the value.
std::map<std::string, std::string> environment(std::string_view input) {
    std::map<std::string, std::string> env{{"DB_PASSWORD", std::string(secret)}};
    for (std::size_t start = 0; start < input.size();) {
        const auto end = std::min(input.find('\n', start), input.size());
        const auto line = input.substr(start, end - start);
        if (!line.empty())
            env[variables[static_cast<unsigned char>(line[0]) % std::size(variables)]] = std::string(line.substr(1));
        start = end + 1;
    }
    return env;
}

// The planted password hides only when an '@' follows it (else it is no
// password). redact() reads text without "://" as no URL; error messages do.
void check_planted_url(const std::string& url) {
    const auto at = url.find(secret);
    if (url.find('@', at) == std::string::npos) return;
    if (url.find("://") < at) require_hidden(redact(url), "redact(url)");
    require_hidden(exercise([&] { return Config::from_url(url); }), "from_url message");
    const std::string seen = url.c_str();  // what an environment variable can hold
    if (seen.find('@', at) != std::string::npos)
        require_hidden(exercise([&] { return from_env({{"DATABASE_URL", seen}}); }), "DATABASE_URL message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    (void)redact(input);
    // The checks plant a password: they would mean nothing if the input held it already.
    if (input.find(secret) != std::string::npos) return 0;

    (void)exercise([&] { return Config::from_url(input); });
    require_hidden(exercise([&] { return from_env(environment(input)); }), "from_env message");
    check_planted_url("postgresql://u:" + std::string(secret) + input);
    check_planted_url("u:" + std::string(secret) + input);  // no scheme
    const auto query = "postgresql://h/d?" + input + "&password=" + std::string(secret);
    require_hidden(redact(query), "redact(query)");
    require_hidden(exercise([&] { return Config::from_url(query); }), "from_url query message");
    // A password in key=value pairs, quoted or not, before or after the input.
    // After a URI it would be a part of the URI (of its dbname, say); after
    // "host =" or "host=a\\" the first word is a part of the host's value.
    const bool uri = input.starts_with("postgresql://") || input.starts_with("postgres://");
    for (const auto& pairs : {"host=h password='" + std::string(secret) + "' " + input,
                              "password=" + std::string(secret) + " " + input,
                              uri ? std::string() : input + " dbname=d password=" + std::string(secret)})
        require_hidden(exercise([&] { return Config::from_url(pairs); }), "from_url pairs message");
    require_hidden(redact(input + " password=" + std::string(secret)), "redact(conninfo)");
    require_hidden(redact(input + " password='" + std::string(secret) + "'"), "redact(quoted conninfo)");
    return 0;
}
