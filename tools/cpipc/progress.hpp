// A one-line progress bar on stderr for runs over many images, drawn only
// when stderr is a terminal: logs and scripts see results and errors only.
#pragma once

#include <cstdio>
#include <string>

namespace cpipc::cli {

class ProgressBar {
 public:
  ProgressBar(int total, bool enabled);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Shows `done` of total, with a short note (the current file, its tiles).
  void update(int done, const std::string& note);
  // Clears the bar so that a normal line can be printed...
  void clear();
  // ...and draws it again, as it was, after that line.
  void redraw();

 private:
  void draw();

  int total_;
  bool enabled_;
  bool tty_;
  bool drawn_ = false;
  bool shown_ = false;  // update() was called: there is a state to redraw
  int done_ = 0;
  std::string note_;
};

}  // namespace cpipc::cli
