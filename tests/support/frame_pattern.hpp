// The payload the multi-process tests publish: uint32 words that are all a
// function of the frame id, and a last word that checks the others, so that
// a reader can tell a whole frame from a torn one (words of two frames).
//
// Cheap on purpose: the producer writes a frame about as fast as a reader
// copies one, so that a reader racing the producer really does overlap it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace cpipc::test {

// Word i of frame `frame_id` (i < n - 1). Word 0 is the frame id itself.
[[nodiscard]] constexpr std::uint32_t pattern_word(std::uint64_t frame_id, std::size_t i) noexcept {
  return static_cast<std::uint32_t>(frame_id) * 2654435761u + static_cast<std::uint32_t>(i) * 40503u;
}

// The checksum word: the sum of every other word, mixed with their count.
[[nodiscard]] constexpr std::uint32_t pattern_checksum(std::span<const std::uint32_t> body) noexcept {
  std::uint32_t sum = 0;
  for (std::uint32_t w : body) sum += w;
  return (sum ^ 0xA5A5A5A5u) + static_cast<std::uint32_t>(body.size());
}

// Fills `words` (at least two) with frame `frame_id`.
inline void fill_pattern(std::span<std::uint32_t> words, std::uint64_t frame_id) noexcept {
  const std::size_t n = words.size();
  for (std::size_t i = 0; i + 1 < n; ++i) words[i] = pattern_word(frame_id, i);
  words[0] = static_cast<std::uint32_t>(frame_id);
  words[n - 1] = pattern_checksum(words.first(n - 1));
}

// True if `words` hold exactly frame `frame_id`: every word and the checksum.
[[nodiscard]] inline bool matches_pattern(std::span<const std::uint32_t> words, std::uint64_t frame_id) noexcept {
  const std::size_t n = words.size();
  if (n < 2 || words[0] != static_cast<std::uint32_t>(frame_id)) return false;
  std::uint32_t wrong = 0;  // no branch per word: the loop vectorizes
  for (std::size_t i = 1; i + 1 < n; ++i) wrong |= words[i] ^ pattern_word(frame_id, i);
  return wrong == 0 && words[n - 1] == pattern_checksum(words.first(n - 1));
}

[[nodiscard]] inline std::span<const std::uint32_t> as_words(std::span<const std::byte> bytes) noexcept {
  return {reinterpret_cast<const std::uint32_t*>(bytes.data()), bytes.size() / sizeof(std::uint32_t)};
}

}  // namespace cpipc::test
