// Errors are values: a Result holds either a T or an error code E, never both.
#pragma once

#include "nestor/lib/assert.hpp"
#include "nestor/lib/placement_new.hpp"
#include "nestor/lib/util.hpp"

namespace nestor {

template <typename E> struct Failure {
    E error;
};
template <typename E> constexpr Failure<E> fail(E error) { return Failure<E>{error}; }

template <typename T, typename E> class [[nodiscard]] Result {
public:
    Result(const T& value) : ok_(true) { new (&storage_) T(value); }
    Result(T&& value) : ok_(true) { new (&storage_) T(move(value)); }
    Result(Failure<E> failure) : ok_(false), error_(failure.error) {}
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    Result(Result&& other) : ok_(other.ok_), error_(other.error_) {
        if (ok_) new (&storage_) T(move(other.value()));
    }
    ~Result() {
        if (ok_) value().~T();
    }

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    E error() const {
        ASSERT(!ok_);
        return error_;
    }
    T& value() {
        ASSERT(ok_);
        return *reinterpret_cast<T*>(&storage_);
    }
    const T& value() const {
        ASSERT(ok_);
        return *reinterpret_cast<const T*>(&storage_);
    }
    T* operator->() { return &value(); }
    T& operator*() { return value(); }

private:
    bool ok_;
    E error_{};
    alignas(T) unsigned char storage_[sizeof(T)];
};

// A Result with no value: success or an error.
template <typename E> class [[nodiscard]] Status {
public:
    Status() : ok_(true) {}
    Status(Failure<E> failure) : ok_(false), error_(failure.error) {}
    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    E error() const {
        ASSERT(!ok_);
        return error_;
    }

private:
    bool ok_;
    E error_{};
};

}  // namespace nestor

// Returns the error of a failed Status (or Result) from the enclosing function, whose own error
// type must be the same.
#define NESTOR_TRY_STATUS(expr)                                                                           \
    do {                                                                                                  \
        if (auto nestor_status_ = (expr); !nestor_status_) return ::nestor::fail(nestor_status_.error()); \
    } while (0)
