// Stream names: what validate_name accepts, and the shm names they map to.
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

#include "cpipc/error.hpp"
#include "cpipc/ipc/name.hpp"

namespace cpipc::ipc {
namespace {

// The Errc of what validate_name(name) throws; nullopt if it accepts the name.
std::optional<Errc> rejection(std::string_view name) {
  try {
    validate_name(name);
  } catch (const Error& e) {
    return e.code();
  }
  return std::nullopt;
}

TEST(ValidateName, RejectsAnEmptyName) { EXPECT_EQ(rejection(""), Errc::invalid_argument); }

TEST(ValidateName, RejectsASlashAnywhere) {
  EXPECT_EQ(rejection("/"), Errc::invalid_argument);
  EXPECT_EQ(rejection("/masks"), Errc::invalid_argument);
  EXPECT_EQ(rejection("a/b"), Errc::invalid_argument);
}

TEST(ValidateName, RejectsDotDot) { EXPECT_EQ(rejection(".."), Errc::invalid_argument); }

TEST(ValidateName, RejectsALeadingDotOrDash) {
  EXPECT_EQ(rejection(".x"), Errc::invalid_argument);
  EXPECT_EQ(rejection("-x"), Errc::invalid_argument);
}

TEST(ValidateName, RejectsCharactersOutsideTheSet) {
  for (const char* name : {"a b", "a\nb", "masks*", "m\xc3\xa4sks", "a:b", "a\\b"}) {
    EXPECT_EQ(rejection(name), Errc::invalid_argument) << name;
  }
}

TEST(ValidateName, RejectsA129CharacterName) {
  EXPECT_EQ(rejection(std::string(kMaxNameLength + 1, 'a')), Errc::invalid_argument);
}

TEST(ValidateName, AcceptsA128CharacterName) { EXPECT_EQ(rejection(std::string(kMaxNameLength, 'a')), std::nullopt); }

TEST(ValidateName, AcceptsLettersDigitsDotUnderscoreDash) {
  for (const char* name : {"masks", "a", "0", "_private", "cellpose.masks_v2-01", "A.B.C", "x.."}) {
    EXPECT_EQ(rejection(name), std::nullopt) << name;
  }
}

TEST(ValidateName, TheMessageSaysWhatIsWrongAndWhatIsAllowed) {
  try {
    validate_name("a/b");
    FAIL() << "a/b was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'/' is not allowed"), std::string::npos) << what;
    EXPECT_NE(what.find("A-Z a-z 0-9 . _ -"), std::string::npos) << what;
  }
}

TEST(ShmNames, CarryThePerUserPrefix) {
  const std::string prefix = "cpipc." + std::to_string(::geteuid()) + ".";
  EXPECT_EQ(shm_prefix(), prefix);
  EXPECT_EQ(shm_object_name("masks"), "/" + prefix + "masks");
  EXPECT_EQ(shm_file_path("masks"), "/dev/shm/" + prefix + "masks");
}

TEST(ShmNames, ValidateTheName) {
  EXPECT_THROW((void)shm_object_name("../etc"), Error);
  EXPECT_THROW((void)shm_file_path(""), Error);
}

}  // namespace
}  // namespace cpipc::ipc
