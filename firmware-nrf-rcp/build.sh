#!/usr/bin/env bash
# Builds ferry's nRF52840 RCP for both boards in release mode and writes
#   dist/ferry-rcp-dk.hex      (nRF52840 DK: flash with nrfjprog or probe-rs)
#   dist/ferry-rcp-dongle.hex  (nRF52840 Dongle: package with nrfutil for its bootloader)
# next to their ELF files, then prints flash/RAM use and fails if a build needs more than
# 128 KiB of flash or 32 KiB of RAM (our budget, well below the chip's 1 MiB / 256 KiB, so the
# RCP keeps fitting next to a bootloader and leaves room to grow).
#
# Needs: rustup (the thumbv7em-none-eabihf target is added if missing); clang, libclang and
# cmake (Nordic's 802.15.4 driver and the MPSL bindings are built from source); an objcopy and
# a size tool that read ARM ELF: llvm-objcopy/llvm-size (Debian `llvm`) or
# arm-none-eabi-objcopy/-size (Debian `binutils-arm-none-eabi`). Run as root with CI set, the
# script installs missing Debian packages itself.
#
# Environment: CARGO_TARGET_DIR (default ./target), CARGO_BUILD_JOBS (read by cargo).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

readonly TARGET=thumbv7em-none-eabihf
readonly FLASH_LIMIT=$((128 * 1024))
readonly RAM_LIMIT=$((32 * 1024))
readonly BOARDS=(dk dongle)

die() {
    echo "build.sh: $*" >&2
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# bindgen loads libclang at build time (Debian: libclang-dev).
has_libclang() {
    ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' ||
        compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null
}

# Prints the first of the given commands that exists.
find_tool() {
    local t
    for t in "$@"; do
        if have "$t"; then
            echo "$t"
            return 0
        fi
    done
    return 1
}

# --- prerequisites ------------------------------------------------------------------------------
missing=()
have clang || missing+=(clang)
has_libclang || missing+=(libclang-dev)
have cmake || missing+=(cmake)
find_tool llvm-objcopy arm-none-eabi-objcopy >/dev/null || missing+=(llvm)
if ((${#missing[@]})); then
    if [[ -n "${CI:-}" && $(id -u) -eq 0 ]] && have apt-get; then
        echo "build.sh: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        die "missing build tools: ${missing[*]}
On Debian/Ubuntu: sudo apt-get install ${missing[*]}
(clang, libclang-dev and cmake build Nordic's 802.15.4 driver and the MPSL bindings; llvm
provides llvm-objcopy and llvm-size; binutils-arm-none-eabi would do for those two as well)."
    fi
fi
objcopy="$(find_tool llvm-objcopy arm-none-eabi-objcopy)" || die "no llvm-objcopy or arm-none-eabi-objcopy"
sizetool="$(find_tool llvm-size arm-none-eabi-size)" || die "no llvm-size or arm-none-eabi-size"

have cargo || die "cargo not found: install Rust with rustup"
if have rustup && ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
fi

# --- host tests of the hardware-free helpers ----------------------------------------------------
# src/mac_frame.rs uses only `core`, so plain rustc tests it on the host in a second.
test_dir="$(mktemp -d)"
trap 'rm -rf "$test_dir"' EXIT
rustc --edition 2021 --test src/mac_frame.rs -o "$test_dir/mac_frame_tests"
"$test_dir/mac_frame_tests"

# --- both boards --------------------------------------------------------------------------------
target_dir="${CARGO_TARGET_DIR:-$here/target}"
mkdir -p dist
over_budget=0
rows=()
for board in "${BOARDS[@]}"; do
    echo "build.sh: building board-$board"
    CARGO_TARGET_DIR="$target_dir" cargo build --release --locked --target "$TARGET" --features "board-$board"
    elf="dist/ferry-rcp-$board.elf"
    hex="dist/ferry-rcp-$board.hex"
    # Both boards build the same binary name: copy it before the next board overwrites it.
    cp "$target_dir/$TARGET/release/ferry-rcp" "$elf"
    "$objcopy" -O ihex "$elf" "$hex"

    # Section sums as `size -A` lists them. Flash: vector table, code, constants and the
    # initial values of .data. RAM: .data, .bss and .uninit; the stack takes what is left.
    read -r flash ram < <("$sizetool" -A "$elf" | awk '
        $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" || $1 == ".gnu.sgstubs" { flash += $2 }
        $1 == ".data" { flash += $2; ram += $2 }
        $1 == ".bss" || $1 == ".uninit" { ram += $2 }
        END { print flash + 0, ram + 0 }')
    problems=()
    ((flash <= FLASH_LIMIT)) || problems+=("flash over budget")
    ((ram <= RAM_LIMIT)) || problems+=("RAM over budget")
    if ((${#problems[@]})); then
        verdict="${problems[*]}"
        over_budget=1
    else
        verdict=ok
    fi
    rows+=("$(awk -v b="$board" -v f="$flash" -v r="$ram" -v v="$verdict" 'BEGIN {
        printf "| %-6s | %-22s | %-20s | %s |", b,
            sprintf("%d B (%.1f KiB)", f, f / 1024), sprintf("%d B (%.1f KiB)", r, r / 1024), v }')")
done

echo
echo "| board  | flash (budget 128 KiB) | RAM (budget 32 KiB)  | verdict |"
echo "|--------|------------------------|----------------------|---------|"
printf '%s\n' "${rows[@]}"
echo
((over_budget == 0)) || die "a build is over its flash/RAM budget"
echo "build.sh: wrote dist/ferry-rcp-dk.hex and dist/ferry-rcp-dongle.hex"
