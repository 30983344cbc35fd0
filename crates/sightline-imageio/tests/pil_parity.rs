//! Pixel parity with PIL (`Image.open(p).convert("RGB")`, libjpeg-turbo inside): every JPEG
//! under the fixtures, and JPEGs that PIL writes here at several subsamplings, qualities,
//! progressive, grayscale and CMYK, decode to byte-identical RGB. One `python3` run decodes
//! everything; the test fails (never skips) when python3 or Pillow is missing
//! (`pip install -r .ci/requirements-test.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;

use sightline_imageio::DecodeOptions;

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("SIGHTLINE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        });
    assert!(
        dir.join("README.md").is_file(),
        "fixtures not found at {} (set SIGHTLINE_FIXTURES)",
        dir.display()
    );
    dir
}

/// Every file whose content starts like a JPEG, below `dir`, sorted.
fn jpegs_below(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs_err::read_dir(dir)
        .expect("read fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            jpegs_below(&p, out);
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        {
            out.push(p);
        }
    }
}

/// Writes PIL's JPEG variants of a synthetic pattern into `dir/made/`, then decodes every path
/// in `dir/list.txt` plus those variants to `dir/<n>.rgb` with PIL; prints one manifest line
/// per image: `n<TAB>width<TAB>height<TAB>oriented<TAB>path`. Oriented entries are
/// `ImageOps.exif_transpose` of the image, the rest plain `Image.open(p).convert("RGB")`.
const PIL_SCRIPT: &str = r#"
import os, sys
from PIL import Image, ImageFile, ImageOps
ImageFile.MAXBLOCK = 1 << 24  # progressive saves of noisy images need a whole-file buffer
out = sys.argv[1]
made = os.path.join(out, "made")
os.makedirs(made)

def pattern(w, h):
    px = bytearray()
    for y in range(h):
        for x in range(w):
            px += bytes(((x * 7 + y * 3) % 256, (x * y + 5 * y) % 256, ((x ^ y) * 9) % 256))
    return Image.frombytes("RGB", (w, h), bytes(px))

variants = []
for (w, h) in [(97, 61), (256, 255), (17, 9), (1, 1)]:
    im = pattern(w, h)
    for kw in [
        dict(quality=95, subsampling="4:4:4"),
        dict(quality=75, subsampling="4:2:2"),
        dict(quality=50, subsampling="4:2:0"),
        dict(quality=90, subsampling="4:2:0", progressive=True),
        dict(quality=100, subsampling="4:4:4", progressive=True),
        dict(quality=85, subsampling="4:2:0", optimize=True),
        dict(quality=10, subsampling="4:2:0"),
    ]:
        name = "%dx%d_q%d_%s%s%s.jpg" % (w, h, kw["quality"], kw["subsampling"].replace(":", ""),
                                         "_prog" if kw.get("progressive") else "",
                                         "_opt" if kw.get("optimize") else "")
        p = os.path.join(made, name)
        im.save(p, **kw)
        variants.append((p, False))
    p = os.path.join(made, "%dx%d_gray.jpg" % (w, h))
    im.convert("L").save(p, quality=80)
    variants.append((p, False))
    p = os.path.join(made, "%dx%d_cmyk.jpg" % (w, h))
    im.convert("CMYK").save(p, quality=90)
    variants.append((p, False))
    exif = Image.Exif()
    exif[0x0112] = 6
    p = os.path.join(made, "%dx%d_exif6.jpg" % (w, h))
    im.save(p, quality=90, exif=exif.tobytes())
    variants.append((p, False))
    variants.append((p, True))

with open(os.path.join(out, "list.txt")) as f:
    items = [(line.rstrip("\n"), False) for line in f if line.strip()]
items += variants
for n, (p, oriented) in enumerate(items):
    im = Image.open(p)
    if oriented:
        im = ImageOps.exif_transpose(im)
    im = im.convert("RGB")
    with open(os.path.join(out, "%d.rgb" % n), "wb") as f:
        f.write(im.tobytes())
    print("%d\t%d\t%d\t%d\t%s" % (n, im.width, im.height, int(oriented), p))
"#;

#[test]
fn every_jpeg_decodes_exactly_as_pil() {
    let root = fixtures();
    let mut fixture_jpegs = Vec::new();
    for sub in ["widgets-a/images", "images", "widgets-a/classify"] {
        let dir = root.join(sub);
        assert!(dir.is_dir(), "fixtures folder {} is missing", dir.display());
        jpegs_below(&dir, &mut fixture_jpegs);
    }
    assert!(
        !fixture_jpegs.is_empty(),
        "no JPEG under {}",
        root.display()
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let list: String = fixture_jpegs
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    fs_err::write(tmp.path().join("list.txt"), list).expect("write list");
    let out = Command::new("python3")
        .arg("-c")
        .arg(PIL_SCRIPT)
        .arg(tmp.path())
        .output()
        .expect("python3 is needed for this test (pip install -r .ci/requirements-test.txt)");
    assert!(
        out.status.success(),
        "PIL reference decode failed (is Pillow installed? pip install -r \
         .ci/requirements-test.txt):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = String::from_utf8(out.stdout).expect("utf-8 manifest");

    let (mut fixtures_same, mut made_same, mut made_total) = (0usize, 0usize, 0usize);
    let mut mismatches = Vec::new();
    for line in manifest.lines() {
        let f: Vec<&str> = line.splitn(5, '\t').collect();
        assert_eq!(f.len(), 5, "bad manifest line {line:?}");
        let (n, w, h) = (f[0], f[1].parse::<u32>(), f[2].parse::<u32>());
        let (w, h) = (w.expect("width"), h.expect("height"));
        let oriented = f[3] == "1";
        let path = Path::new(f[4]);
        let made = path.starts_with(tmp.path());
        made_total += usize::from(made);
        let want = fs_err::read(tmp.path().join(format!("{n}.rgb"))).expect("PIL output");
        let options = DecodeOptions {
            apply_orientation: oriented,
            ..DecodeOptions::default()
        };
        let got = match options.load_rgb(path) {
            Ok(img) => img,
            Err(e) => {
                mismatches.push(format!("{}: we fail to decode: {e}", path.display()));
                continue;
            }
        };
        if got.dimensions() != (w, h) {
            mismatches.push(format!(
                "{}: we decode {:?}, PIL {w}x{h}",
                path.display(),
                got.dimensions()
            ));
            continue;
        }
        let got = got.into_raw();
        let differing = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        if differing == 0 && got.len() == want.len() {
            if made {
                made_same += 1;
            } else {
                fixtures_same += 1;
            }
        } else {
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap_or(0);
            mismatches.push(format!(
                "{}{}: {differing} of {} bytes differ (max {worst} levels)",
                path.display(),
                if oriented { " (EXIF-oriented)" } else { "" },
                got.len()
            ));
        }
    }
    eprintln!(
        "PIL parity: {fixtures_same}/{} fixture JPEGs and {made_same}/{made_total} PIL-made \
         JPEGs byte-identical",
        fixture_jpegs.len()
    );
    assert_eq!(
        fixtures_same + mismatches.len() + made_same,
        fixture_jpegs.len() + made_total,
        "manifest and list disagree"
    );
    assert!(
        mismatches.is_empty(),
        "{} images differ from PIL:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(made_total >= 30, "only {made_total} PIL-made variants");
}
