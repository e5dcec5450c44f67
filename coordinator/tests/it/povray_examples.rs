//! POV-Ray's own example animations (Debian's `povray-examples`) and a scene whose ini uses
//! `Declare=` and cyclic animation render on the farm exactly as `povray` renders them.
//!
//! Each scene's ini gets `+W48 +H36` appended, as a submitter would to try a scene quickly;
//! the same ini is then rendered directly (`povray scene.ini -D`, in the scene's folder) and
//! every farm frame is compared with POV-Ray's frame: pixel-identical, or, where POV-Ray's
//! multithreaded adaptive antialiasing varies between runs, at least 50 dB PSNR.

use std::path::{Path, PathBuf};
use std::time::Duration;

use idlefarm_coordinator::client::SubmitOptions;
use image::DynamicImage;

use crate::common::{Farm, assert_complete, shared_tempdir, wait_for_job};
use crate::scenes::make_zip;

/// Where Debian's `povray-examples` puts the example animations.
const EXAMPLES: &str = "/usr/share/doc/povray/examples/animations";

/// What each test scene's ini gets appended: a tiny size, so all frames render in seconds.
const TINY: &str = "\n+W48 +H36\n";

/// The least PSNR accepted where frames are not pixel-identical.
const MIN_PSNR_DB: f64 = 50.0;

/// A scene with its clock in the colour and position, `Declare=`d values and cyclic
/// animation, so a wrong clock, a dropped declare or an ignored cyclic mode changes pixels.
const DECLARED_SCENE: &str = r#"#version 3.7;
global_settings { assumed_gamma 1.0 }
#ifndef (Hue) #error "Hue was not declared" #end
camera { location <0, 1, -4> look_at <0, 0, 0> }
light_source { <3, 5, -4> color rgb 1 }
plane { y, -1 pigment { checker rgb 0.2 rgb 0.8 } }
sphere { <2 * clock - 1, 0, 0>, 0.6 pigment { rgb <clock, Hue, 1 - clock> } }
"#;

/// Its ini: options and switches mixed as POV-Ray allows, a section that must not count.
const DECLARED_INI: &str = "; Declare= and cyclic animation\n\
    Input_File_Name=declared.pov\n\
    +KFI1 +kff8 +kc declare=Hue=0.7 ; cyclic: frame 8 stops short of clock 1\n\
    Antialias=on\n\
    Sampling_Method=2\n\
    Bits_Per_Color=8\n\
    +W48 +H36\n\
    [Big]\n\
    +W640 +H480\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn povray_example_animations_match_direct_renders() {
    let scenes = shared_tempdir();
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent("pc-1");
    farm.add_agent("pc-2");
    let mut compared = Vec::new();
    for (name, ini) in [
        ("splinefollow", "splinefollow.ini"),
        ("clockd", "clockd.ini"),
        ("camera2", "camera2.ini"),
        ("l_o", "l_o.ini"),
    ] {
        let dir = Path::new(EXAMPLES).join(name);
        let pov = format!("{name}.pov");
        let scene = std::fs::read(dir.join(&pov)).expect("povray-examples is installed");
        let mut ini_text = std::fs::read_to_string(dir.join(ini)).unwrap();
        ini_text.push_str(TINY);
        let folder = scenes.path().join(name);
        compared.push(compare(&farm, &folder, (&pov, &scene), (ini, &ini_text)).await);
    }
    let declared = scenes.path().join("declared");
    let result = compare(
        &farm,
        &declared,
        ("declared.pov", DECLARED_SCENE.as_bytes()),
        ("declared.ini", DECLARED_INI),
    )
    .await;
    compared.push(result);
    for (name, frames, exact) in &compared {
        println!("{name}: {frames} frames, {exact} pixel-identical, the rest >= {MIN_PSNR_DB} dB");
    }
    farm.stop().await;
}

/// Renders the scene on the farm and directly; returns (scene, frames, identical frames).
async fn compare(
    farm: &Farm,
    folder: &Path,
    (pov, scene): (&str, &[u8]),
    (ini, ini_text): (&str, &str),
) -> (String, usize, usize) {
    std::fs::create_dir_all(folder).unwrap();
    std::fs::write(folder.join(pov), scene).unwrap();
    std::fs::write(folder.join(ini), ini_text).unwrap();
    let zip = folder.join("job.zip");
    make_zip(&zip, &[(pov, scene), (ini, ini_text.as_bytes())]);
    let opts = SubmitOptions {
        chunk: Some("3".into()),
        ..SubmitOptions::default()
    };
    let job = farm.client.submit(&zip, &opts).await.unwrap();
    let job = wait_for_job(&farm.client, job.id, Duration::from_secs(600)).await;
    assert_complete(farm, &job).await;
    assert_eq!(job.settings.frame_size(), (48, 36), "{pov}: the ini's size");

    let direct = direct_render(folder, ini);
    let frames = farm.client.frames(job.id).await.unwrap();
    assert_eq!(frames.len(), direct.len(), "{pov}: frame count");
    let farm_dir = farm
        .data()
        .join("jobs")
        .join(job.id.to_string())
        .join("frames");
    let mut exact = 0;
    for (frame, direct_file) in frames.iter().zip(&direct) {
        let file = frame.file.clone().expect("done frame has a file");
        let ours = image::open(farm_dir.join(&file)).unwrap();
        let theirs = image::open(direct_file).unwrap();
        match psnr(&ours, &theirs) {
            None => exact += 1,
            Some(db) => assert!(
                db >= MIN_PSNR_DB,
                "{pov} frame {}: {db:.1} dB from POV-Ray's own {}",
                frame.frame,
                direct_file.display()
            ),
        }
    }
    (pov.to_string(), frames.len(), exact)
}

/// Renders every frame of `ini` in `folder` as a person would; the frame files in order.
pub(crate) fn direct_render(folder: &Path, ini: &str) -> Vec<PathBuf> {
    let out = folder.join("direct");
    std::fs::create_dir_all(&out).unwrap();
    let mut target = std::ffi::OsString::from("+O");
    target.push(&out);
    target.push("/");
    let run = std::process::Command::new("povray")
        .current_dir(folder)
        .arg(ini)
        .arg("-D")
        .arg("-P")
        .arg(&target)
        .output()
        .expect("povray runs");
    assert!(
        run.status.success(),
        "povray {ini}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    files
}

/// `None` when the images are pixel-identical, else their PSNR in dB over 16-bit RGBA.
pub(crate) fn psnr(a: &DynamicImage, b: &DynamicImage) -> Option<f64> {
    assert_eq!((a.width(), a.height()), (b.width(), b.height()));
    let (a, b) = (a.to_rgba16(), b.to_rgba16());
    if a.as_raw() == b.as_raw() {
        return None;
    }
    let squared: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = squared / a.as_raw().len() as f64;
    Some(10.0 * (f64::from(u16::MAX).powi(2) / mse).log10())
}
