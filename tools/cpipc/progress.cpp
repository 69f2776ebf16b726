#include "progress.hpp"

#include <unistd.h>

#include <algorithm>

namespace cpipc::cli {

ProgressBar::ProgressBar(int total, bool enabled)
    : total_(std::max(total, 1)), enabled_(enabled), tty_(::isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::update(int done, const std::string& note) {
  done_ = done;
  note_ = note;
  shown_ = true;
  draw();
}

void ProgressBar::redraw() {
  if (shown_) draw();
}

void ProgressBar::draw() {
  if (!enabled_ || !tty_) return;
  constexpr int kWidth = 30;
  const int filled = kWidth * std::clamp(done_, 0, total_) / total_;
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r\033[K[%s] %d/%d %s", bar.c_str(), done_, total_, note_.substr(0, 60).c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::clear() {
  if (enabled_ && tty_ && drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace cpipc::cli
