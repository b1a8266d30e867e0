#pragma once
// One value of a query result and its conversion to C++ types. Results come
// in text format; get<T>() checks the column's type, NULL and the range, and
// names the row, the column, the value's type and the requested type when it
// refuses.
//
//   get<T>() for   integers (int16/32/64...)  from int2, int4, int8, oid, numeric
//                  double, float              from float4, float8, numeric, integers
//                  bool                       from bool
//                  std::string, string_view   from any type (its text form)
//                  std::vector<std::byte>     from bytea
//                  std::optional<T>           NULL as std::nullopt, else as T

#include <libpq-fe.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "params.hpp"

namespace reservoir::pg {

namespace detail {

template <class T>
inline constexpr bool is_optional = false;
template <class T>
inline constexpr bool is_optional<std::optional<T>> = true;

using Bytes = std::vector<std::byte>;

// The name of a requested C++ type, for messages.
template <class T>
std::string type_name() {
    if constexpr (is_optional<T>) {
        return "std::optional<" + type_name<typename T::value_type>() + ">";
    } else if constexpr (std::same_as<T, bool>) {
        return "bool";
    } else if constexpr (Integer<T>) {
        return (std::is_signed_v<T> ? "int" : "uint") + std::to_string(8 * sizeof(T));
    } else if constexpr (Float<T>) {
        return std::same_as<T, float> ? "float" : "double";
    } else if constexpr (std::same_as<T, std::string>) {
        return "std::string";
    } else if constexpr (std::same_as<T, std::string_view>) {
        return "std::string_view";
    } else if constexpr (std::same_as<T, Bytes>) {
        return "std::vector<std::byte>";
    } else {
        static_assert(!sizeof(T), "reservoir::pg: get<T>() does not support this type");
    }
}

// The SQL name of a column type, for messages.
inline std::string type_name(Oid type) {
    switch (type) {
        case oid::boolean: return "bool";
        case oid::bytea: return "bytea";
        case oid::int8: return "int8";
        case oid::int2: return "int2";
        case oid::int4: return "int4";
        case oid::text: return "text";
        case oid::oid: return "oid";
        case oid::float4: return "float4";
        case oid::float8: return "float8";
        case oid::numeric: return "numeric";
        case 18: return "char";
        case 19: return "name";
        case 114: return "json";
        case 705: return "unknown";
        case 1042: return "bpchar";
        case 1043: return "varchar";
        case 1082: return "date";
        case 1114: return "timestamp";
        case 1184: return "timestamptz";
        case 2950: return "uuid";
        case 3802: return "jsonb";
        default: return "type with OID " + std::to_string(type);
    }
}

// A value as a message quotes it: whole up to max_quoted bytes, else its
// start and its length (a numeric can have a thousand digits).
inline constexpr std::size_t max_quoted = 32;
inline std::string quoted_value(std::string_view value) {
    if (value.size() <= max_quoted) return std::string(value);
    return std::string(value.substr(0, max_quoted)) + "... (" + std::to_string(value.size()) + " bytes)";
}

inline bool one_of(Oid type, std::initializer_list<Oid> types) noexcept {
    for (Oid t : types)
        if (t == type) return true;
    return false;
}

}  // namespace detail

// A view of one value; valid while its Result lives.
class Field {
public:
    Field(const PGresult* result, int row, int column) noexcept : result_(result), row_(row), column_(column) {}

    bool is_null() const noexcept { return PQgetisnull(result_, row_, column_) != 0; }
    // The value's text form; empty for NULL.
    std::string_view text() const noexcept {
        return {PQgetvalue(result_, row_, column_), static_cast<std::size_t>(PQgetlength(result_, row_, column_))};
    }
    Oid type() const noexcept { return PQftype(result_, column_); }
    std::string_view name() const noexcept { return PQfname(result_, column_); }
    std::size_t row() const noexcept { return static_cast<std::size_t>(row_); }
    std::size_t column() const noexcept { return static_cast<std::size_t>(column_); }

    template <class T>
    T get() const {
        if constexpr (detail::is_optional<T>) {
            if (is_null()) return std::nullopt;
            return get<typename T::value_type>();
        } else {
            if (is_null())
                refuse<T>("the value is NULL (column type " + detail::type_name(type()) + "); read it as " +
                          detail::type_name<std::optional<T>>() + " to accept NULL");
            return decode<T>();
        }
    }

private:
    template <class T>
    T decode() const {
        using namespace oid;
        if constexpr (std::same_as<T, std::string> || std::same_as<T, std::string_view>) {
            return T(text());
        } else if constexpr (std::same_as<T, bool>) {
            expect_type<T>({boolean}, "bool");
            return text() == "t";
        } else if constexpr (Integer<T>) {
            expect_type<T>({int2, int4, int8, oid::oid, numeric}, "an integer type");
            return parse_number<T>();
        } else if constexpr (Float<T>) {
            expect_type<T>({float4, float8, numeric, int2, int4, int8}, "a numeric type");
            return parse_number<T>();
        } else if constexpr (std::same_as<T, detail::Bytes>) {
            expect_type<T>({bytea}, "bytea");
            return unescape_bytea();
        } else {
            static_assert(!sizeof(T), "reservoir::pg: get<T>() does not support this type");
        }
    }

    template <class T>
    void expect_type(std::initializer_list<Oid> accepted, const char* wanted) const {
        if (!detail::one_of(type(), accepted))
            refuse<T>("the column's type is " + detail::type_name(type()) + ", not " + wanted);
    }

    template <class T>
    T parse_number() const {
        const std::string_view t = text();
        T value{};
        const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
        if (ec == std::errc::result_out_of_range)
            refuse<T>("the " + detail::type_name(type()) + " value " + detail::quoted_value(t) + " is out of range");
        if (ec != std::errc{} || end != t.data() + t.size())
            refuse<T>("the " + detail::type_name(type()) + " value " + detail::quoted_value(t) + " is not a valid " +
                      detail::type_name<T>());
        return value;
    }

    detail::Bytes unescape_bytea() const {
        std::size_t size = 0;
        const auto* escaped = reinterpret_cast<const unsigned char*>(PQgetvalue(result_, row_, column_));
        unsigned char* raw = PQunescapeBytea(escaped, &size);  // hex or the old escape format
        if (!raw) throw std::bad_alloc();
        const auto* first = reinterpret_cast<const std::byte*>(raw);
        detail::Bytes bytes(first, first + size);
        PQfreemem(raw);
        return bytes;
    }

    template <class T>
    [[noreturn]] void refuse(const std::string& why) const {
        throw TypeError("reservoir: cannot read row " + std::to_string(row_) + ", column \"" + std::string(name()) +
                        "\" (index " + std::to_string(column_) + ") as " + detail::type_name<T>() + ": " + why);
    }

    const PGresult* result_;
    int row_, column_;
};

}  // namespace reservoir::pg
