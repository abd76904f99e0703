// tools/convert/pickle.hpp — a restricted unpickler for the pickles torch.save writes.
//
// It interprets pickle protocols 2..4 as data, never as code: GLOBAL / STACK_GLOBAL are only
// accepted for an allow-list (collections.OrderedDict, torch._utils._rebuild_tensor*,
// _rebuild_parameter and the torch.*Storage types), and REDUCE only "calls" those by building
// plain values (a dict, a tensor description). Any other global (os.system, builtins.eval, ...)
// is refused with an error naming it before anything else happens. Persistent ids become
// storage references (the tensor bytes live in separate zip entries, see torch_checkpoint.hpp).
// Memory is bounded by the input: objects live in one arena (no reference cycles, no leaks),
// the memo is a map, the stack and object count are capped, and nothing recurses.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fofa/core/error.hpp"

namespace fofa::convert {

// Element types of torch storages, named after their storage classes.
enum class StorageDtype { f32, f64, f16, bf16, i64, i32, i16, i8, u8, boolean };

inline std::size_t dtype_size(StorageDtype t) {
  switch (t) {
    case StorageDtype::f64: case StorageDtype::i64: return 8;
    case StorageDtype::f32: case StorageDtype::i32: return 4;
    case StorageDtype::f16: case StorageDtype::bf16: case StorageDtype::i16: return 2;
    default: return 1;
  }
}
inline const char* dtype_name(StorageDtype t) {
  static constexpr const char* names[] = {"float32", "float64", "float16", "bfloat16", "int64",
                                          "int32",   "int16",   "int8",    "uint8",    "bool"};
  return names[static_cast<int>(t)];
}
inline bool is_floating(StorageDtype t) {
  return t == StorageDtype::f32 || t == StorageDtype::f64 || t == StorageDtype::f16 || t == StorageDtype::bf16;
}

using ValueId = std::uint32_t;

// A pickled value. Containers hold ids into the arena of their PickleResult.
struct PickleValue {
  enum class Kind { none, boolean, integer, real, string, bytes, tuple, list, dict, global, storage, tensor };
  Kind kind = Kind::none;
  std::int64_t integer = 0;
  double real = 0;
  std::string text;                  // string / bytes / global "module name" / storage key
  std::vector<ValueId> items;        // tuple, list; dict as key0, value0, key1, value1, ...
  // storage: dtype + element count; tensor: storage id + offset/size/stride (in elements)
  StorageDtype dtype = StorageDtype::f32;
  std::int64_t numel = 0;
  ValueId storage = 0;
  std::int64_t offset = 0;
  std::vector<std::int64_t> sizes, strides;
};

struct PickleLimits {
  std::size_t max_stack = 1u << 20;
  std::size_t max_objects = 1u << 22;  // ~200k tensors; each object costs ~150 bytes
  std::size_t max_dims = 8;
};

// The arena of every value created and the id of the top-level one.
struct PickleResult {
  std::vector<PickleValue> values;
  ValueId root = 0;
  const PickleValue& at(ValueId id) const { return values[id]; }
};

// The globals a torch state dict may name; anything else is refused.
inline constexpr std::string_view kAllowedGlobals[] = {
    "collections OrderedDict",       "torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_tensor",
    "torch._utils _rebuild_parameter", "torch FloatStorage",            "torch DoubleStorage",
    "torch HalfStorage",             "torch BFloat16Storage",           "torch LongStorage",
    "torch IntStorage",              "torch ShortStorage",              "torch CharStorage",
    "torch ByteStorage",             "torch BoolStorage"};

namespace detail {

class Unpickler {
 public:
  Unpickler(std::span<const std::byte> data, PickleLimits limits) : data_(data), limits_(limits) {}

  PickleResult run() {
    for (;;) {
      const std::size_t at = pos_;
      const unsigned op = u8();
      switch (op) {
        case 0x80: {  // PROTO
          const unsigned proto = u8();
          FOFA_CHECK(proto >= 2 && proto <= 5, "pickle: protocol ", proto, " is not supported (torch.save writes 2)");
          break;
        }
        case 0x95: skip(8); break;  // FRAME: a length hint, the opcodes follow inline
        case '.': {                 // STOP
          FOFA_CHECK(stack_.size() == 1 && marks_.empty(), "pickle: STOP with ", stack_.size(),
                     " values on the stack (expected 1)");
          out_.root = stack_.back();
          return std::move(out_);
        }
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case '0': pop(); break;                            // POP
        case '1': pop_mark(); break;                       // POP_MARK
        case '2': push(top()); break;                      // DUP
        case 'N': push(make(PickleValue::Kind::none)); break;
        case 0x88: case 0x89: {  // NEWTRUE, NEWFALSE
          const ValueId v = make(PickleValue::Kind::boolean);
          out_.values[v].integer = op == 0x88;
          push(v);
          break;
        }
        case 'J': push_int(static_cast<std::int32_t>(le<std::uint32_t>())); break;  // BININT
        case 'K': push_int(u8()); break;                                            // BININT1
        case 'M': push_int(le<std::uint16_t>()); break;                             // BININT2
        case 0x8a: {                                                                // LONG1
          const unsigned n = u8();
          FOFA_CHECK(n <= 8, "pickle: LONG1 of ", n, " bytes at offset ", at, " does not fit 64 bits");
          std::uint64_t v = 0;
          for (unsigned i = 0; i < n; ++i) v |= std::uint64_t{u8()} << (8 * i);
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~std::uint64_t{0} << (8 * n);  // sign-extend
          push_int(static_cast<std::int64_t>(v));
          break;
        }
        case 'G': {  // BINFLOAT: big-endian double
          std::uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | u8();
          const ValueId v = make(PickleValue::Kind::real);
          out_.values[v].real = std::bit_cast<double>(bits);
          push(v);
          break;
        }
        case 'X': push_text(PickleValue::Kind::string, le<std::uint32_t>()); break;  // BINUNICODE
        case 0x8c: push_text(PickleValue::Kind::string, u8()); break;                // SHORT_BINUNICODE
        case 0x8d: push_text(PickleValue::Kind::string, le<std::uint64_t>()); break; // BINUNICODE8
        case 'C': push_text(PickleValue::Kind::bytes, u8()); break;                  // SHORT_BINBYTES
        case 'B': push_text(PickleValue::Kind::bytes, le<std::uint32_t>()); break;   // BINBYTES
        case 'U': push_text(PickleValue::Kind::string, u8()); break;                 // SHORT_BINSTRING
        case 'T': push_text(PickleValue::Kind::string, le<std::uint32_t>()); break;  // BINSTRING
        case ')': push(make(PickleValue::Kind::tuple)); break;                       // EMPTY_TUPLE
        case 't': push(make_container(PickleValue::Kind::tuple, pop_mark())); break; // TUPLE
        case 0x85: case 0x86: case 0x87: {                                           // TUPLE1..3
          const std::size_t n = op - 0x84;
          FOFA_CHECK(stack_.size() >= n + floor(), "pickle: TUPLE", n, " on a stack of ", stack_.size(), " at offset ", at);
          std::vector<ValueId> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(make_container(PickleValue::Kind::tuple, std::move(items)));
          break;
        }
        case ']': push(make(PickleValue::Kind::list)); break;                        // EMPTY_LIST
        case 'l': push(make_container(PickleValue::Kind::list, pop_mark())); break;  // LIST
        case 'a': {                                                                  // APPEND
          const ValueId v = pop();
          mutable_container(top(), PickleValue::Kind::list, "APPEND").items.push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_mark();
          auto& list = mutable_container(top(), PickleValue::Kind::list, "APPENDS").items;
          list.insert(list.end(), items.begin(), items.end());
          break;
        }
        case '}': push(make(PickleValue::Kind::dict)); break;  // EMPTY_DICT
        case 'd': {                                            // DICT
          auto items = pop_mark();
          FOFA_CHECK(items.size() % 2 == 0, "pickle: DICT with an odd number of items at offset ", at);
          push(make_container(PickleValue::Kind::dict, std::move(items)));
          break;
        }
        case 's': {  // SETITEM
          const ValueId v = pop();
          const ValueId k = pop();
          set_item(top(), k, v);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          FOFA_CHECK(items.size() % 2 == 0, "pickle: SETITEMS with an odd number of items at offset ", at);
          for (std::size_t i = 0; i < items.size(); i += 2) set_item(top(), items[i], items[i + 1]);
          break;
        }
        case 'c': {  // GLOBAL "module\nname\n"
          std::string module = line();
          std::string name = line();
          push_global(module, name);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const ValueId name = pop();
          const ValueId module = pop();
          FOFA_CHECK(kind(name) == PickleValue::Kind::string && kind(module) == PickleValue::Kind::string,
                     "pickle: STACK_GLOBAL needs two strings at offset ", at);
          const std::string module_text = out_.values[module].text, name_text = out_.values[name].text;
          push_global(module_text, name_text);
          break;
        }
        case 'R': {  // REDUCE
          const ValueId args = pop();
          const ValueId callable = pop();
          push(reduce(callable, args, at));
          break;
        }
        case 'b': {  // BUILD: state for OrderedDict (its _metadata) or a tensor; kept out of the data
          const ValueId state = pop();
          const auto k = kind(top());
          FOFA_CHECK(k == PickleValue::Kind::dict || k == PickleValue::Kind::tensor,
                     "pickle: BUILD on a value that is neither a dict nor a tensor at offset ", at);
          (void)state;
          break;
        }
        case 'Q': {  // BINPERSID
          const ValueId pid = pop();
          push(persistent_load(pid, at));
          break;
        }
        case 'q': memo_put(u8()); break;                     // BINPUT
        case 'r': memo_put(le<std::uint32_t>()); break;      // LONG_BINPUT
        case 0x94: memo_put(memo_.size()); break;            // MEMOIZE
        case 'h': push(memo_get(u8(), at)); break;           // BINGET
        case 'j': push(memo_get(le<std::uint32_t>(), at)); break;  // LONG_BINGET
        default:
          detail_throw_opcode(op, at);
      }
    }
  }

 private:
  [[noreturn]] static void detail_throw_opcode(unsigned op, std::size_t at) {
    const char* hint = "";
    if (op == 0x81 || op == 0x92 || op == 'i' || op == 'o')
      hint = " (object construction is never executed)";
    else if (op == 'P')
      hint = " (text persistent ids are not used by torch.save)";
    ::fofa::detail::throw_error("fofa: pickle: unsupported opcode 0x", std::hex, op, std::dec, " at offset ", at, hint);
  }

  unsigned u8() {
    FOFA_CHECK(pos_ < data_.size(), "pickle: truncated at offset ", pos_, " (no STOP opcode)");
    return std::to_integer<unsigned>(data_[pos_++]);
  }
  void skip(std::size_t n) {
    FOFA_CHECK(n <= data_.size() - pos_, "pickle: truncated at offset ", pos_);
    pos_ += n;
  }
  template <class T>
  T le() {
    FOFA_CHECK(sizeof(T) <= data_.size() - pos_, "pickle: truncated at offset ", pos_);
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
      v |= static_cast<T>(static_cast<T>(std::to_integer<unsigned>(data_[pos_ + i])) << (8 * i));
    pos_ += sizeof(T);
    return v;
  }
  std::string line() {
    std::string s;
    for (;;) {
      const unsigned c = u8();
      if (c == '\n') return s;
      FOFA_CHECK(s.size() < 256, "pickle: GLOBAL name longer than 256 bytes at offset ", pos_);
      s.push_back(static_cast<char>(c));
    }
  }

  PickleValue::Kind kind(ValueId v) const { return out_.values[v].kind; }
  ValueId make(PickleValue::Kind k) {
    FOFA_CHECK(out_.values.size() < limits_.max_objects, "pickle: more than ", limits_.max_objects, " objects");
    out_.values.emplace_back();
    out_.values.back().kind = k;
    return static_cast<ValueId>(out_.values.size() - 1);
  }
  ValueId make_container(PickleValue::Kind k, std::vector<ValueId> items) {
    const ValueId v = make(k);
    out_.values[v].items = std::move(items);
    return v;
  }
  void push(ValueId v) {
    FOFA_CHECK(stack_.size() < limits_.max_stack, "pickle: stack deeper than ", limits_.max_stack);
    stack_.push_back(v);
  }
  void push_int(std::int64_t i) {
    const ValueId v = make(PickleValue::Kind::integer);
    out_.values[v].integer = i;
    push(v);
  }
  void push_text(PickleValue::Kind k, std::uint64_t n) {
    FOFA_CHECK(n <= data_.size() - pos_, "pickle: string of ", n, " bytes at offset ", pos_, " runs past the end");
    const ValueId v = make(k);
    out_.values[v].text.assign(reinterpret_cast<const char*>(data_.data() + pos_), static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    push(v);
  }
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  ValueId top() const {
    FOFA_CHECK(stack_.size() > floor(), "pickle: stack underflow at offset ", pos_);
    return stack_.back();
  }
  ValueId pop() {
    const ValueId v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<ValueId> pop_mark() {
    FOFA_CHECK(!marks_.empty(), "pickle: no MARK before offset ", pos_);
    const std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValueId> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  PickleValue& mutable_container(ValueId v, PickleValue::Kind k, const char* op) {
    FOFA_CHECK(kind(v) == k, "pickle: ", op, " on a value of the wrong kind at offset ", pos_);
    return out_.values[v];
  }
  void set_item(ValueId dict, ValueId k, ValueId v) {
    auto& items = mutable_container(dict, PickleValue::Kind::dict, "SETITEM").items;
    items.push_back(k);
    items.push_back(v);
  }
  void memo_put(std::uint64_t index) { memo_[index] = top(); }
  ValueId memo_get(std::uint64_t index, std::size_t at) const {
    auto it = memo_.find(index);
    FOFA_CHECK(it != memo_.end(), "pickle: memo entry ", index, " read before it was written (offset ", at, ")");
    return it->second;
  }

  void push_global(const std::string& module, const std::string& name) {
    const std::string full = module + " " + name;
    bool allowed = false;
    for (std::string_view a : kAllowedGlobals) allowed = allowed || a == full;
    FOFA_CHECK(allowed, "pickle: refusing global '", module, ".", name,
               "': only torch state-dict globals (OrderedDict, torch._utils._rebuild_tensor_v2, "
               "torch.*Storage) are allowed, nothing in a checkpoint is ever executed");
    const ValueId v = make(PickleValue::Kind::global);
    out_.values[v].text = full;
    push(v);
  }

  static bool storage_dtype(std::string_view global, StorageDtype& t) {
    static constexpr std::pair<std::string_view, StorageDtype> table[] = {
        {"torch FloatStorage", StorageDtype::f32}, {"torch DoubleStorage", StorageDtype::f64},
        {"torch HalfStorage", StorageDtype::f16},  {"torch BFloat16Storage", StorageDtype::bf16},
        {"torch LongStorage", StorageDtype::i64},  {"torch IntStorage", StorageDtype::i32},
        {"torch ShortStorage", StorageDtype::i16}, {"torch CharStorage", StorageDtype::i8},
        {"torch ByteStorage", StorageDtype::u8},   {"torch BoolStorage", StorageDtype::boolean}};
    for (const auto& [name, dt] : table)
      if (name == global) {
        t = dt;
        return true;
      }
    return false;
  }

  // ('storage', <StorageType>, key, location, numel) as torch's persistent_id writes it.
  ValueId persistent_load(ValueId pid, std::size_t at) {
    const std::vector<ValueId> it = out_.values[pid].items;  // a copy: make() below may move the arena
    FOFA_CHECK(kind(pid) == PickleValue::Kind::tuple && it.size() == 5, "pickle: persistent id at offset ", at,
               " is not a 5-tuple ('storage', type, key, location, numel)");
    FOFA_CHECK(kind(it[0]) == PickleValue::Kind::string && out_.values[it[0]].text == "storage",
               "pickle: persistent id at offset ", at, " is not a storage");
    StorageDtype dt{};
    FOFA_CHECK(kind(it[1]) == PickleValue::Kind::global && storage_dtype(out_.values[it[1]].text, dt),
               "pickle: persistent id at offset ", at, " names no known storage type");
    FOFA_CHECK(kind(it[2]) == PickleValue::Kind::string, "pickle: storage key at offset ", at, " is not a string");
    FOFA_CHECK(kind(it[4]) == PickleValue::Kind::integer && out_.values[it[4]].integer >= 0,
               "pickle: storage size at offset ", at, " is not a non-negative integer");
    const ValueId v = make(PickleValue::Kind::storage);
    PickleValue& s = out_.values[v];
    s.dtype = dt;
    s.text = out_.values[it[2]].text;
    s.numel = out_.values[it[4]].integer;
    return v;
  }

  std::vector<std::int64_t> int_tuple(ValueId v, const char* what, std::size_t at) const {
    const PickleValue& t = out_.values[v];
    FOFA_CHECK(t.kind == PickleValue::Kind::tuple, "pickle: tensor ", what, " at offset ", at, " is not a tuple");
    FOFA_CHECK(t.items.size() <= limits_.max_dims, "pickle: tensor ", what, " at offset ", at, " has ", t.items.size(),
               " dimensions (max ", limits_.max_dims, ")");
    std::vector<std::int64_t> r;
    for (ValueId i : t.items) {
      FOFA_CHECK(kind(i) == PickleValue::Kind::integer && out_.values[i].integer >= 0, "pickle: tensor ", what,
                 " at offset ", at, " holds a value that is not a non-negative integer");
      r.push_back(out_.values[i].integer);
    }
    return r;
  }

  // "Calls" an allow-listed global by building the value it would return; nothing runs.
  ValueId reduce(ValueId callable, ValueId args, std::size_t at) {
    FOFA_CHECK(kind(callable) == PickleValue::Kind::global, "pickle: REDUCE of a value that is not a global at offset ", at);
    FOFA_CHECK(kind(args) == PickleValue::Kind::tuple, "pickle: REDUCE arguments at offset ", at, " are not a tuple");
    const std::string fn = out_.values[callable].text;
    const std::vector<ValueId> a = out_.values[args].items;
    if (fn == "collections OrderedDict") {
      FOFA_CHECK(a.empty(), "pickle: OrderedDict with arguments at offset ", at);
      return make(PickleValue::Kind::dict);
    }
    if (fn == "torch._utils _rebuild_tensor_v2" || fn == "torch._utils _rebuild_tensor") {
      // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
      FOFA_CHECK(a.size() >= 4 && a.size() <= 7, "pickle: ", fn, " with ", a.size(), " arguments at offset ", at);
      FOFA_CHECK(kind(a[0]) == PickleValue::Kind::storage, "pickle: tensor at offset ", at, " has no storage");
      FOFA_CHECK(kind(a[1]) == PickleValue::Kind::integer && out_.values[a[1]].integer >= 0,
                 "pickle: tensor storage offset at offset ", at, " is not a non-negative integer");
      auto sizes = int_tuple(a[2], "size", at);
      auto strides = int_tuple(a[3], "stride", at);
      FOFA_CHECK(sizes.size() == strides.size(), "pickle: tensor at offset ", at, " has ", sizes.size(), " sizes but ",
                 strides.size(), " strides");
      const ValueId v = make(PickleValue::Kind::tensor);
      PickleValue& t = out_.values[v];
      t.storage = a[0];
      t.offset = out_.values[a[1]].integer;
      t.sizes = std::move(sizes);
      t.strides = std::move(strides);
      t.dtype = out_.values[a[0]].dtype;
      return v;
    }
    if (fn == "torch._utils _rebuild_parameter") {  // (tensor, requires_grad, backward_hooks)
      FOFA_CHECK(a.size() == 3 && kind(a[0]) == PickleValue::Kind::tensor, "pickle: bad _rebuild_parameter at offset ", at);
      return a[0];
    }
    ::fofa::detail::throw_error("fofa: pickle: refusing to call '", fn, "' at offset ", at);
  }

  std::span<const std::byte> data_;
  PickleLimits limits_;
  std::size_t pos_ = 0;
  std::vector<ValueId> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, ValueId> memo_;
  PickleResult out_;
};

}  // namespace detail

// Interprets a pickle; throws fofa::Error on anything outside the torch state-dict subset.
inline PickleResult unpickle(std::span<const std::byte> data, PickleLimits limits = {}) {
  return detail::Unpickler(data, limits).run();
}

}  // namespace fofa::convert
