#pragma once
// The version, in one place: CMake reads it from here.

#define RESERVOIR_VERSION_MAJOR 0
#define RESERVOIR_VERSION_MINOR 1
#define RESERVOIR_VERSION_PATCH 0
#define RESERVOIR_VERSION_STRING "0.1.0"
