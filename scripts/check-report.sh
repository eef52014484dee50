#!/usr/bin/env bash
# Renders a `persona model report` HTML file in headless Chromium (Debian's `chromium`,
# installed when missing) and writes a PNG screenshot beside it, then checks that the page
# drew its charts: the screenshot must exist and be mostly not blank.
#
#   scripts/check-report.sh REPORT.html [OUT.png]   (HEIGHT: the window's height, 1500 unless set)
set -euo pipefail
report=$(realpath "$1")
out=${2:-${report%.html}.png}
if ! command -v chromium >/dev/null; then
    SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
grep -q "<svg" "$report" || { echo "$report has no inline SVG chart"; exit 1; }
if grep -Eq '<script|src="http|href="http' "$report"; then echo "$report is not self-contained"; exit 1; fi
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,${HEIGHT:-1500} --screenshot="$out" "file://$report" >/dev/null 2>&1
[ -s "$out" ] || { echo "no screenshot written"; exit 1; }
python3 - "$out" <<'PY'
import struct, sys, zlib
# Count non-white pixels of the PNG (8-bit RGB or RGBA, as Chromium writes it).
data = open(sys.argv[1], "rb").read()
w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
idat = b"".join(data[i + 8:i + 8 + struct.unpack(">I", data[i:i + 4])[0]] for i in range(8, len(data)) if data[i + 4:i + 8] == b"IDAT")
raw = zlib.decompress(idat)
bpp = 4 if ctype == 6 else 3
stride = w * bpp + 1
inked = 0
prev = bytearray(w * bpp)
for y in range(h):
    f, line = raw[y * stride], bytearray(raw[y * stride + 1:(y + 1) * stride])
    for x in range(len(line)):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    inked += sum(1 for x in range(0, len(line), bpp) if min(line[x:x + 3]) < 200)
    prev = line
share = inked / (w * h)
print(f"{sys.argv[1]}: {w}x{h}, {share:.1%} of the page drawn")
sys.exit(0 if share > 0.01 else 1)
PY
