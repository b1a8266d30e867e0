#pragma once
// Query parameters ($1..$n) from C++ values, for PQsendQueryParams: values go
// to the server apart from the SQL text, so no value is ever spliced into it.
// Everything travels in text format except byte arrays (binary bytea).
//
//   integers          int2 / int4 / int8 by size (uint64 as numeric)
//   float, double     float4, float8 (NaN and infinities included)
//   bool              bool
//   strings           std::string, std::string_view, const char* (nullptr = NULL),
//                     sent untyped so the server infers the type (text, json, uuid...)
//   std::optional<T>  NULL when empty, typed as T
//   std::nullopt      NULL, untyped
//   bytes             any contiguous range of std::byte: std::vector, std::span, std::array

#include <libpq-fe.h>

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "error.hpp"

namespace reservoir::pg {

// Type OIDs of the built-in types the driver maps (pg_type.dat).
namespace oid {
inline constexpr Oid unspecified = 0;  // let the server infer the parameter's type
inline constexpr Oid boolean = 16, bytea = 17, int8 = 20, int2 = 21, int4 = 23, text = 25, oid = 26,
                     float4 = 700, float8 = 701, numeric = 1700;
}  // namespace oid

template <class T>
concept ByteRange = std::ranges::contiguous_range<T> && std::ranges::sized_range<T> &&
                    std::same_as<std::remove_cv_t<std::ranges::range_value_t<T>>, std::byte>;

// Integers other than bool and the character types (a char is not a number).
template <class T>
concept Integer = std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, char> &&
                  !std::same_as<T, wchar_t> && !std::same_as<T, char8_t> && !std::same_as<T, char16_t> &&
                  !std::same_as<T, char32_t>;

template <class T>
concept Float = std::same_as<T, float> || std::same_as<T, double>;

template <class T>
concept Text = std::convertible_to<const T&, std::string_view> && !ByteRange<T>;

// The parameter arrays of one statement. Holds pointers into the arguments it
// was built from: use it while they are alive (within the call).
class Params {
public:
    template <class... Args>
    explicit Params(const Args&... args) {
        static_assert(sizeof...(Args) <= 65535, "PostgreSQL allows at most 65535 parameters");
        types_.reserve(sizeof...(Args));
        values_.reserve(sizeof...(Args));
        lengths_.reserve(sizeof...(Args));
        formats_.reserve(sizeof...(Args));
        offsets_.reserve(sizeof...(Args));
        (add(args), ...);
        // The buffer has stopped growing: its addresses are final now.
        for (std::size_t i = 0; i < offsets_.size(); ++i)
            if (offsets_[i] != external) values_[i] = buffer_.data() + offsets_[i];
    }
    Params(const Params&) = delete;
    Params& operator=(const Params&) = delete;

    int size() const noexcept { return static_cast<int>(values_.size()); }
    const Oid* types() const noexcept { return types_.data(); }
    const char* const* values() const noexcept { return values_.data(); }
    const int* lengths() const noexcept { return lengths_.data(); }
    const int* formats() const noexcept { return formats_.data(); }

private:
    static constexpr std::size_t external = std::numeric_limits<std::size_t>::max();
    static constexpr int text_format = 0, binary_format = 1;

    void push(Oid type, const char* value, int length = 0, int format = text_format) {
        types_.push_back(type);
        values_.push_back(value);
        lengths_.push_back(length);
        formats_.push_back(format);
        offsets_.push_back(external);
    }

    // A text value kept in our buffer, NUL-terminated as libpq wants.
    void push_copy(Oid type, std::string_view text) {
        push(type, nullptr);
        offsets_.back() = buffer_.size();
        buffer_.append(text);
        buffer_.push_back('\0');
    }

    void add(std::nullopt_t) { push(oid::unspecified, nullptr); }
    void add(std::nullptr_t) { push(oid::unspecified, nullptr); }

    template <std::same_as<bool> T>
    void add(T v) {
        push(type_of<T>(), v ? "t" : "f");
    }

    template <Integer T>
    void add(T v) {
        char text[24];
        const auto end = std::to_chars(text, text + sizeof text, v).ptr;
        push_copy(type_of<T>(), std::string_view(text, static_cast<std::size_t>(end - text)));
    }

    template <Float T>
    void add(T v) {
        constexpr Oid type = type_of<T>();
        if (std::isnan(v)) return push(type, "NaN");
        if (std::isinf(v)) return push(type, v > 0 ? "Infinity" : "-Infinity");
        char text[32];
        const auto end = std::to_chars(text, text + sizeof text, v).ptr;  // shortest exact round trip
        push_copy(type, std::string_view(text, static_cast<std::size_t>(end - text)));
    }

    template <Text T>
    void add(const T& v) {
        if constexpr (std::convertible_to<const T&, const char*>) {
            push(oid::unspecified, static_cast<const char*>(v));  // a null pointer is NULL
        } else {
            const std::string_view text(v);
            if (text.find('\0') != std::string_view::npos)
                throw QueryError("reservoir: query parameter $" + std::to_string(values_.size() + 1) +
                                     " contains a NUL byte, which text cannot hold; send binary data as "
                                     "std::vector<std::byte> or std::span<const std::byte>",
                                 "22021");
            if constexpr (std::same_as<T, std::string>)
                push(oid::unspecified, v.c_str());
            else
                push_copy(oid::unspecified, text);
        }
    }

    template <ByteRange T>
    void add(const T& v) {
        const auto size = std::ranges::size(v);
        if (size > static_cast<std::size_t>(std::numeric_limits<int>::max()))
            throw QueryError("reservoir: query parameter $" + std::to_string(values_.size() + 1) +
                                 " is larger than 2 GiB",
                             "54000");
        static constexpr char empty = 0;  // libpq reads a non-null pointer as a value, even of length 0
        const char* data = size ? reinterpret_cast<const char*>(std::ranges::data(v)) : &empty;
        push(type_of<T>(), data, static_cast<int>(size), binary_format);
    }

    template <class T>
    void add(const std::optional<T>& v) {
        if (v) return add(*v);
        push(type_of<T>(), nullptr);  // a typed NULL, so that `SELECT $1` has a type
    }

    template <class T>
    static constexpr Oid type_of() {
        if constexpr (std::same_as<T, bool>) {
            return oid::boolean;
        } else if constexpr (Integer<T> && std::is_signed_v<T>) {
            return sizeof(T) <= 2 ? oid::int2 : sizeof(T) <= 4 ? oid::int4 : oid::int8;
        } else if constexpr (Integer<T>) {  // unsigned: the next wider signed type
            return sizeof(T) < 2 ? oid::int2 : sizeof(T) < 4 ? oid::int4 : sizeof(T) < 8 ? oid::int8 : oid::numeric;
        } else if constexpr (std::same_as<T, float>) {
            return oid::float4;
        } else if constexpr (std::same_as<T, double>) {
            return oid::float8;
        } else if constexpr (ByteRange<T>) {
            return oid::bytea;
        } else {
            static_assert(Text<T>, "reservoir::pg: unsupported query parameter type");
            return oid::unspecified;
        }
    }

    std::vector<Oid> types_;
    std::vector<const char*> values_;
    std::vector<int> lengths_;
    std::vector<int> formats_;
    std::vector<std::size_t> offsets_;  // into buffer_, or `external`
    std::string buffer_;                 // text of converted values
};

}  // namespace reservoir::pg
