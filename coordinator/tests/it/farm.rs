//! Whole jobs through a real coordinator and real agents: Blender, POV-Ray with an `.ini`,
//! a POV-Ray zip project with an include, an agent killed mid-chunk, and a scene that fails.

use std::time::{Duration, Instant};

use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::JobState;

use crate::common::{Farm, assert_complete, shared_tempdir, wait_for_job};
use crate::scenes::{make_blend, make_zip, pov_ini, pov_scene};

const LIMIT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blender_job_is_rendered_by_two_agents_and_assembled() {
    let scenes = shared_tempdir();
    let blend = make_blend(scenes.path(), "cube.blend", 24, 64, 36);
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent("a");
    farm.add_agent("b");
    let started = Instant::now();
    let job = farm
        .client
        .submit(&blend, &SubmitOptions::default())
        .await
        .unwrap();
    assert_eq!((job.settings.frame_start, job.settings.frame_end), (1, 24));
    assert_eq!(job.settings.frame_size(), (64, 36));
    assert_eq!(job.settings.engine.as_deref(), Some("CYCLES"));
    let job = wait_for_job(&farm.client, job.id, LIMIT).await;
    eprintln!(
        "24-frame Blender job took {:.1} s end to end",
        started.elapsed().as_secs_f64()
    );
    assert_complete(&farm, &job).await;
    let agents = farm.client.agents().await.unwrap();
    assert_eq!(agents.iter().map(|a| a.frames_done).sum::<i64>(), 24);
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn povray_animation_with_ini_is_rendered() {
    let scenes = shared_tempdir();
    let pov = scenes.path().join("ball.pov");
    let ini = scenes.path().join("ball.ini");
    std::fs::write(&pov, pov_scene(None)).unwrap();
    std::fs::write(&ini, pov_ini(1, 12, 48, 32)).unwrap();
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent("a");
    farm.add_agent("b");
    let opts = SubmitOptions {
        ini: Some(ini),
        ..SubmitOptions::default()
    };
    let job = farm.client.submit(&pov, &opts).await.unwrap();
    assert_eq!(job.settings.frames(), (1..=12).collect::<Vec<_>>());
    let job = wait_for_job(&farm.client, job.id, LIMIT).await;
    assert_complete(&farm, &job).await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn povray_zip_project_with_an_include_is_rendered() {
    let scenes = shared_tempdir();
    let zip = scenes.path().join("project.zip");
    let scene = pov_scene(Some("inc/colours.inc"));
    make_zip(
        &zip,
        &[
            ("scene.pov", scene.as_bytes()),
            (
                "inc/colours.inc",
                b"#declare SceneColour = rgb <0.2, 0.5, 1>;\n",
            ),
            ("scene.ini", pov_ini(1, 6, 40, 30).as_bytes()),
        ],
    );
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent("a");
    let job = farm
        .client
        .submit(&zip, &SubmitOptions::default())
        .await
        .unwrap();
    assert_eq!(job.settings.main_file, "scene.pov");
    let job = wait_for_job(&farm.client, job.id, LIMIT).await;
    assert_complete(&farm, &job).await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_agent_loses_its_lease_and_another_agent_finishes() {
    let scenes = shared_tempdir();
    let pov = scenes.path().join("slow.pov");
    let ini = scenes.path().join("slow.ini");
    // Big enough that a 30-frame chunk takes several seconds.
    std::fs::write(&pov, pov_scene(None)).unwrap();
    std::fs::write(&ini, pov_ini(1, 30, 320, 240)).unwrap();
    let mut farm = Farm::start(|c| c.lease_ttl = Duration::from_secs(3)).await;
    let mut victim = farm.spawn_agent_process("victim");
    let opts = SubmitOptions {
        ini: Some(ini),
        chunk: Some("30".into()),
        ..SubmitOptions::default()
    };
    let job = farm.client.submit(&pov, &opts).await.unwrap();

    // Kill it (SIGKILL) once it has delivered some frames but not all.
    let start = Instant::now();
    loop {
        let j = farm.client.job(job.id).await.unwrap();
        if j.frames.done >= 2 {
            assert!(
                j.frames.done < 30,
                "the chunk finished before the agent could be killed"
            );
            break;
        }
        assert!(start.elapsed() < LIMIT, "victim delivered nothing: {j:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    victim.start_kill().unwrap();
    victim.wait().await.unwrap();
    // The dead agent's renderer dies with it instead of rendering on unseen.
    let victim_dir = farm.dir.path().join("agent-victim").display().to_string();
    let start = Instant::now();
    while !processes_mentioning(&victim_dir).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "renderer outlived its agent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = farm.client.job(job.id).await.unwrap();
    assert!(
        before.frames.rendering > 0,
        "frames are still leased to the dead agent"
    );

    farm.add_agent("rescuer");
    let job = wait_for_job(&farm.client, job.id, LIMIT).await;
    assert_complete(&farm, &job).await;
    let agents = farm.client.agents().await.unwrap();
    assert_eq!(
        agents.iter().map(|a| a.frames_done).sum::<i64>(),
        30,
        "no frame counted twice"
    );
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scene_the_renderer_rejects_fails_the_job_with_the_log() {
    let scenes = shared_tempdir();
    let pov = scenes.path().join("broken.pov");
    std::fs::write(
        &pov,
        "camera { location <0,0,-3> look_at 0 }\nsphere { 0, 1 pigment { colour NoSuchColour } }\n",
    )
    .unwrap();
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent("a");
    let job = farm
        .client
        .submit(&pov, &SubmitOptions::default())
        .await
        .unwrap();
    let job = wait_for_job(&farm.client, job.id, LIMIT).await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert!(error.contains("failed on it 3 times"), "{error}");
    assert!(error.contains("povray"), "{error}");
    farm.stop().await;
}

/// Pids of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").unwrap().flatten();
    entries
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_ffmpeg_fails_the_job_keeps_its_frames_and_says_why() {
    let scenes = shared_tempdir();
    let pov = scenes.path().join("ball.pov");
    let ini = scenes.path().join("ball.ini");
    std::fs::write(&pov, pov_scene(None)).unwrap();
    std::fs::write(&ini, pov_ini(1, 3, 32, 24)).unwrap();
    let mut farm = Farm::start(|c| c.ffmpeg = "/bin/false".into()).await;
    farm.add_agent("a");
    let opts = SubmitOptions {
        ini: Some(ini),
        ..SubmitOptions::default()
    };
    let job = farm.client.submit(&pov, &opts).await.unwrap();
    let job = wait_for_job(&farm.client, job.id, LIMIT).await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert!(
        error.contains("frames are ready") && error.contains("ffmpeg"),
        "{error}"
    );
    assert_eq!(job.frames.done, 3);
    let out = tempfile::tempdir().unwrap();
    for f in farm.client.frames(job.id).await.unwrap() {
        let file = f.file.expect("every frame is kept");
        farm.client
            .download(
                &format!("/jobs/{}/frames/{file}", job.id),
                &out.path().join(&file),
            )
            .await
            .unwrap();
        image::open(out.path().join(&file)).expect("frame decodes");
    }
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_scene_under_two_names_renders_twice_from_one_cached_input() {
    let scenes = shared_tempdir();
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent("a");
    let mut jobs = Vec::new();
    for name in ["first.pov", "second.pov"] {
        let pov = scenes.path().join(name);
        std::fs::write(&pov, pov_scene(None)).unwrap();
        jobs.push(
            farm.client
                .submit(&pov, &SubmitOptions::default())
                .await
                .unwrap(),
        );
    }
    for job in jobs {
        let job = wait_for_job(&farm.client, job.id, LIMIT).await;
        assert_complete(&farm, &job).await;
    }
    farm.stop().await;
}
