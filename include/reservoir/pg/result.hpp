#pragma once
// The result of a statement: owns its PGresult; rows and fields are views
// into it, valid while the Result lives (so is a std::string_view read from it).
//
//   for (auto row : result) total += row.get<std::int64_t>("amount");
//   auto name = result.at(0).get<std::optional<std::string>>(1);
//   auto n = conn.query("SELECT count(*) FROM t").scalar<std::int64_t>();

#include <libpq-fe.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>

#include "error.hpp"
#include "field.hpp"

namespace reservoir::pg {

namespace detail {

struct ResultDeleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

[[noreturn]] inline void no_such(const std::string& what) { throw TypeError("reservoir: " + what); }

// A column index or name, checked against the result.
inline int column_index(const PGresult* r, std::size_t column) {
    if (column >= static_cast<std::size_t>(PQnfields(r)))
        no_such("no column " + std::to_string(column) + " in a result of " + std::to_string(PQnfields(r)) +
                " columns");
    return static_cast<int>(column);
}

inline int column_index(const PGresult* r, std::string_view name) {
    const int n = PQnfields(r);
    for (int j = 0; j < n; ++j)
        if (name == PQfname(r, j)) return j;
    std::string names;
    for (int j = 0; j < n; ++j) names += (j ? ", " : "") + std::string(PQfname(r, j));
    no_such("no column named \"" + std::string(name) + "\" in the result (columns: " + names + ")");
}

}  // namespace detail

// One row: a view into its Result.
class Row {
public:
    Row(const PGresult* result, int row) noexcept : result_(result), row_(row) {}

    // A column by index or by name (as the server named it); throws TypeError if absent.
    Field operator[](std::size_t column) const { return {result_, row_, detail::column_index(result_, column)}; }
    Field operator[](std::string_view name) const { return {result_, row_, detail::column_index(result_, name)}; }
    Field at(std::size_t column) const { return (*this)[column]; }
    Field at(std::string_view name) const { return (*this)[name]; }

    template <class T>
    T get(std::size_t column) const {
        return (*this)[column].template get<T>();
    }
    template <class T>
    T get(std::string_view name) const {
        return (*this)[name].template get<T>();
    }

    std::size_t size() const noexcept { return static_cast<std::size_t>(PQnfields(result_)); }
    std::size_t index() const noexcept { return static_cast<std::size_t>(row_); }

private:
    const PGresult* result_;
    int row_;
};

class Result {
public:
    class iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = Row;
        using difference_type = std::ptrdiff_t;
        using reference = Row;

        iterator() noexcept = default;
        iterator(const PGresult* result, int row) noexcept : result_(result), row_(row) {}
        Row operator*() const noexcept { return {result_, row_}; }
        iterator& operator++() noexcept {
            ++row_;
            return *this;
        }
        iterator operator++(int) noexcept {
            iterator before = *this;
            ++row_;
            return before;
        }
        bool operator==(const iterator& other) const noexcept { return row_ == other.row_; }

    private:
        const PGresult* result_ = nullptr;
        int row_ = 0;
    };

    Result() noexcept = default;
    explicit Result(detail::ResultPtr result) noexcept : result_(std::move(result)) {}

    std::size_t rows() const noexcept { return result_ ? static_cast<std::size_t>(PQntuples(result_.get())) : 0; }
    std::size_t size() const noexcept { return rows(); }
    bool empty() const noexcept { return rows() == 0; }
    std::size_t columns() const noexcept { return result_ ? static_cast<std::size_t>(PQnfields(result_.get())) : 0; }
    std::string_view column_name(std::size_t column) const {
        return PQfname(result_.get(), detail::column_index(result_.get(), column));
    }
    Oid column_type(std::size_t column) const {
        return PQftype(result_.get(), detail::column_index(result_.get(), column));
    }

    // A row by index; throws TypeError when there is no such row.
    Row operator[](std::size_t row) const {
        if (row >= rows())
            detail::no_such("no row " + std::to_string(row) + " in a result of " + std::to_string(rows()) + " rows");
        return {result_.get(), static_cast<int>(row)};
    }
    Row at(std::size_t row) const { return (*this)[row]; }

    // The single value of a one-row result, e.g. of `SELECT count(*) ...`.
    template <class T>
    T scalar() const {
        if (rows() != 1 || columns() < 1)
            detail::no_such("scalar() needs one row with a column; the result has " + std::to_string(rows()) +
                            " rows and " + std::to_string(columns()) + " columns");
        return (*this)[0].get<T>(0);
    }

    iterator begin() const noexcept { return {result_.get(), 0}; }
    iterator end() const noexcept { return {result_.get(), static_cast<int>(rows())}; }

    // Rows inserted, updated, deleted, selected... as the command tag reports; 0 when it reports none.
    std::uint64_t affected_rows() const noexcept {
        if (!result_) return 0;
        const std::string_view count = PQcmdTuples(result_.get());
        std::uint64_t n = 0;
        std::from_chars(count.data(), count.data() + count.size(), n);
        return n;
    }
    // The command tag, e.g. "INSERT 0 1", "SELECT 3", "BEGIN".
    std::string_view command_tag() const noexcept { return result_ ? PQcmdStatus(result_.get()) : ""; }

    PGresult* native_handle() const noexcept { return result_.get(); }

private:
    detail::ResultPtr result_;
};

}  // namespace reservoir::pg
