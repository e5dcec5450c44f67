//! Tests of reading POV-Ray inis: every form POV-Ray accepts, and what the farm refuses.

use super::povray_ini::*;

#[test]
fn an_empty_file_gives_povray_defaults() {
    let ini = parse_ini("").unwrap();
    assert_eq!(ini, PovIni::default());
    assert_eq!((ini.width, ini.height), (320, 240));
    assert_eq!(ini.frames(), (1, 1));
    assert_eq!((ini.initial_clock, ini.final_clock), (0.0, 1.0));
    assert!(!ini.antialias);
}

#[test]
fn reads_key_value_lines_case_insensitively() {
    let ini = parse_ini(
        "; an animation\n\
         initial_frame = 1\n\
         FINAL_FRAME=24 ; last one\n\
         Initial_Clock=0\n\
         Final_Clock = 2.5\n\
         Width=64\n\
         Height=36\n\
         Antialias=On\n\
         Antialias_Threshold=0.3\n\
         Antialias_Depth=3\n\
         Input_File_Name=\"scenes/ball.pov\"\n\
         Output_File_Name=out/ball\n\
         Display=Off\n\
         Output_File_Type=N\n\
         Library_Path=/usr/share/povray-3.7/include\n\
         [Other]\n\
         Width=1\n",
    )
    .unwrap();
    assert_eq!((ini.initial_frame, ini.final_frame), (1, 24));
    assert_eq!((ini.initial_clock, ini.final_clock), (0.0, 2.5));
    assert_eq!((ini.width, ini.height), (64, 36));
    assert!(ini.antialias);
    assert_eq!(ini.antialias_threshold, Some(0.3));
    assert_eq!(ini.antialias_depth, Some(3));
    assert_eq!(ini.input_file_name.as_deref(), Some("scenes/ball.pov"));
    assert_eq!(ini.output_file_name.as_deref(), Some("out/ball"));
}

#[test]
fn reads_switch_lines() {
    let ini =
        parse_ini("+W64 +H36 +KFI1 +KFF24 +KI0 +KF1\n+A0.3 +R3 +Iball.pov -D +WT4 +Q9\n").unwrap();
    assert_eq!((ini.width, ini.height), (64, 36));
    assert_eq!((ini.initial_frame, ini.final_frame), (1, 24));
    assert_eq!((ini.initial_clock, ini.final_clock), (0.0, 1.0));
    assert!(ini.antialias);
    assert_eq!(ini.antialias_threshold, Some(0.3));
    assert_eq!(ini.antialias_depth, Some(3));
    assert_eq!(ini.input_file_name.as_deref(), Some("ball.pov"));
}

#[test]
fn minus_a_turns_antialiasing_off() {
    assert!(!parse_ini("Antialias=on\n-A\n").unwrap().antialias);
    let ini = parse_ini("+A\n-A0.2\n").unwrap();
    assert!(!ini.antialias);
    assert_eq!(ini.antialias_threshold, Some(0.2));
    for value in ["off", "false", "no", "0"] {
        assert!(!parse_ini(&format!("Antialias={value}")).unwrap().antialias);
    }
    for value in ["ON", "true", "Yes", "1"] {
        assert!(parse_ini(&format!("Antialias={value}")).unwrap().antialias);
    }
}

#[test]
fn subset_frames_become_the_default_range() {
    let ini = parse_ini("Initial_Frame=1\nFinal_Frame=100\nSubset_Start_Frame=10\n+EF20").unwrap();
    assert_eq!(ini.frames(), (10, 20));
    let only_start = parse_ini("+KFI1 +KFF100 +SF90").unwrap();
    assert_eq!(only_start.frames(), (90, 100));
}

#[test]
fn refuses_shell_commands() {
    for key in [
        "Pre_Scene_Command",
        "post_frame_command",
        "User_Abort_Command",
        "Fatal_Error_Return",
    ] {
        let err = parse_ini(&format!("Width=64\n{key}=rm -rf ~\n")).unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(
            err.contains("runs shell commands, which idlefarm does not allow"),
            "{err}"
        );
    }
}

#[test]
fn names_the_line_of_a_bad_value() {
    let err = parse_ini("Width=64\nHeight=tall\n").unwrap_err();
    assert_eq!(
        err,
        "line 2: Height must be a whole number of pixels, not \"tall\""
    );
    let err = parse_ini("\n\nInitial_Frame=one").unwrap_err();
    assert!(
        err.starts_with("line 3: Initial_Frame must be a whole frame number"),
        "{err}"
    );
    assert!(
        parse_ini("Final_Clock=soon")
            .unwrap_err()
            .contains("must be a number")
    );
    assert!(parse_ini("Final_Clock=nan").is_err());
    assert!(
        parse_ini("Antialias=maybe")
            .unwrap_err()
            .contains("on or off")
    );
    assert!(
        parse_ini("Antialias_Depth=12")
            .unwrap_err()
            .contains("1 to 9")
    );
    assert!(
        parse_ini("+KFIx")
            .unwrap_err()
            .contains("+KFI must be a whole frame number")
    );
}

#[test]
fn frame_numbers_stay_within_the_frames_fields_bounds() {
    let err = parse_ini("Initial_Frame=-9223372036854775808\nFinal_Frame=0").unwrap_err();
    assert_eq!(
        err,
        "line 1: Initial_Frame -9223372036854775808 is out of bounds; frames go from -1048574 to 1048574"
    );
    for text in [
        "+KFF1048575",
        "+KFI-1048575",
        "Subset_End_Frame=99999999999",
    ] {
        assert!(
            parse_ini(text).unwrap_err().contains("out of bounds"),
            "{text}"
        );
    }
    let edge = parse_ini("+KFI-1048574 +KFF1048574").unwrap();
    assert_eq!(edge.frames(), (-1_048_574, 1_048_574));
}

#[test]
fn refuses_impossible_sizes() {
    assert!(
        parse_ini("Width=0")
            .unwrap_err()
            .contains("between 1 and 16384")
    );
    assert!(
        parse_ini("+H20000")
            .unwrap_err()
            .contains("between 1 and 16384")
    );
    assert!(
        parse_ini("+W")
            .unwrap_err()
            .contains("+W must be a whole number")
    );
    assert!(parse_ini("+W-5").is_err());
}

#[test]
fn refuses_lines_that_are_not_options() {
    let err = parse_ini("Width=64\nrender this please\n").unwrap_err();
    assert!(
        err.starts_with("line 2: \"render\" is not an option"),
        "{err}"
    );
    assert!(parse_ini("[Broken").unwrap_err().contains("no closing ']'"));
    assert!(
        parse_ini("+W64 H36")
            .unwrap_err()
            .contains("\"H36\" is not an option")
    );
    assert!(parse_ini("+5").unwrap_err().contains("not a switch"));
    assert!(
        parse_ini("My Key=1")
            .unwrap_err()
            .contains("\"My\" is not an option")
    );
}

#[test]
fn refuses_backwards_frames() {
    let err = parse_ini("Initial_Frame=10\nFinal_Frame=5").unwrap_err();
    assert_eq!(err, "Final_Frame 5 is before Initial_Frame 10");
    assert!(
        parse_ini("+KFI1 +KFF10 +SF8 +EF3")
            .unwrap_err()
            .contains("before Subset_Start_Frame")
    );
    assert!(
        parse_ini("+KFI1 +KFF10 +SF5 +EF30")
            .unwrap_err()
            .contains("outside")
    );
}

#[test]
fn keeps_semicolons_inside_quotes_and_skips_a_byte_order_mark() {
    let ini =
        parse_ini("\u{feff}Output_File_Name=\"a;b\" ; comment\n// another comment\n").unwrap();
    assert_eq!(ini.output_file_name.as_deref(), Some("a;b"));
}

#[test]
fn reads_switches_and_an_option_on_one_line_as_povray_does() {
    // POV-Ray's own splinefollow.ini.
    let ini = parse_ini(
        "Input_File_Name=splinefollow.pov\n\
         +kf0.1666 +kff20 +kc declare=fp=0\n\
         ;+kff120 +kc declare=fp=1\n\
         Cyclic_Animation=on\n\
         Pause_when_Done=off\n",
    )
    .unwrap();
    assert_eq!((ini.initial_frame, ini.final_frame), (1, 20));
    assert_eq!((ini.initial_clock, ini.final_clock), (0.0, 0.1666));
    assert!(ini.cyclic);
    assert_eq!(ini.input_file_name.as_deref(), Some("splinefollow.pov"));
    assert!(ini.source.contains("declare=fp=0"));

    let ini = parse_ini("+KFF9 -kc # a comment\nCYCLIC_ANIMATION = Off ;;insures it reaches 1.0")
        .unwrap();
    assert!(!ini.cyclic);
    assert_eq!(ini.final_frame, 9);
    assert!(parse_ini("+KC").unwrap().cyclic);
    assert!(
        parse_ini("+KC5")
            .unwrap_err()
            .contains("+KC takes no value")
    );
    assert!(
        parse_ini("Cyclic_Animation=sometimes")
            .unwrap_err()
            .contains("Cyclic_Animation must be on or off")
    );
}

#[test]
fn reads_one_option_per_line_and_its_first_word() {
    let ini = parse_ini("Final_Frame=20 Width=5\nDeclare=Name=\"a b\"\n").unwrap();
    assert_eq!(ini.final_frame, 20);
    assert_eq!(ini.width, 320);
}

#[test]
fn quoted_values_and_bare_scene_names() {
    let ini = parse_ini("+I\"my scene.pov\" +W8\n").unwrap();
    assert_eq!(ini.input_file_name.as_deref(), Some("my scene.pov"));
    assert_eq!(ini.width, 8);
    let ini = parse_ini("ball.pov +H9\n").unwrap();
    assert_eq!(ini.input_file_name.as_deref(), Some("ball.pov"));
    assert_eq!(ini.height, 9);
    let ini = parse_ini("Input_File_Name='a b.pov' ; comment").unwrap();
    assert_eq!(ini.input_file_name.as_deref(), Some("a b.pov"));
    assert!(
        parse_ini("Input_File_Name=\"ball.pov")
            .unwrap_err()
            .contains("no closing \"")
    );
}

#[test]
fn sections_count_only_when_chosen() {
    let text = "+W64 +H48\n+KFF10\n[Small]\n+W16 +H12\n[ Tiny ]\nWidth=4\n[big]\nWidth=800\n";
    let global = parse_ini(text).unwrap();
    assert_eq!(
        (global.width, global.height, global.final_frame),
        (64, 48, 10)
    );
    assert_eq!(global.sections, ["Small", " Tiny ", "big"]);
    let small = parse_ini_section(text, Some("small")).unwrap();
    assert_eq!((small.width, small.height, small.final_frame), (16, 12, 10));
    assert_eq!(small.section.as_deref(), Some("small"));
    assert_eq!(parse_ini_section(text, Some("BIG")).unwrap().width, 800);
    let err = parse_ini_section(text, Some("huge")).unwrap_err();
    assert_eq!(
        err,
        "has no [huge] section; it has [Small], [ Tiny ], [big]"
    );
    let err = parse_ini_section("+W5", Some("huge")).unwrap_err();
    assert!(err.contains("no sections at all"), "{err}");
}

#[test]
fn refuses_other_inis_and_paths_out_of_the_job() {
    for (text, wanted) in [
        ("Include_Ini=more.ini", "reads another .ini file"),
        ("more.ini", "reads another .ini file"),
        ("\"more.INI[Section]\"", "reads another .ini file"),
        ("Input_File_Name=/etc/passwd", "outside the job's folder"),
        ("+I../other/ball.pov", "outside the job's folder"),
        ("Output_File_Name=~/frames/", "outside the job's folder"),
        ("+O\"/tmp/x.png\"", "outside the job's folder"),
        ("All_File=/home/u/.bashrc", "outside the job's folder"),
        ("+GA/home/u/.profile", "outside the job's folder"),
        ("+GI../x.ini", "outside the job's folder"),
        ("Create_Ini=C:\\x.ini", "outside the job's folder"),
        ("Library_Path=../../secret", "outside the job's folder"),
        ("+L/home/u", "outside the job's folder"),
        ("Include_Header=/etc/shadow", "outside the job's folder"),
        ("Post_Frame_Command=rm -rf ~", "runs shell commands"),
    ] {
        let err = parse_ini(text).unwrap_err();
        assert!(err.starts_with("line 1: "), "{text}: {err}");
        assert!(err.contains(wanted), "{text}: {err}");
    }
    for text in [
        "All_File=true",
        "All_File=log.txt",
        "+GAlog.txt",
        "-GA",
        "Library_Path=/usr/share/povray-3.7/include",
        "Library_Path=includes, more",
        "+Linc",
        "Include_Header=common.inc",
        "+Oframes/out.png",
    ] {
        assert!(parse_ini(text).is_ok(), "{text}");
    }
}

#[test]
fn accepts_options_the_farm_leaves_to_povray() {
    let ini = parse_ini(
        "Declare=fp=0\nJitter=on\nJitter_Amount=0.5\nSampling_Method=2\nDisplay_Gamma=2.2\n\
         File_Gamma=sRGB\nBits_Per_Color=16\nQuality=9\nRadiosity_Vain_Pretrace=off\n\
         Output_Alpha=on\nTest_Abort_Count=100\n+UA +J0.3 +AM2 +Q9 +FN16 +WT4 -P\n",
    )
    .unwrap();
    assert_eq!((ini.width, ini.height), (320, 240));
}

mod submitted {
    use idlefarm_protocol::submit_fields::INI;

    use crate::submit::tests::Scratch;
    use crate::submit::{SubmitFields, Tools, Upload, prepare};

    const SECTIONED: &[u8] =
        b"+KFF12 +KC declare=Hue=0.5\n[Small]\n+W16 +H12\n[Big]\n+W640 +H480\n";

    async fn submit(
        ini: &[u8],
        section: Option<&str>,
    ) -> Result<crate::submit::Prepared, crate::error::ApiError> {
        let scratch = Scratch::new();
        let upload = Upload {
            file: scratch.file("ball.pov", b"sphere { 0, 1 pigment { rgb clock } }"),
            ini: Some(scratch.file("ball.ini", ini)),
            fields: SubmitFields {
                ini_section: section.map(str::to_string),
                ..SubmitFields::default()
            },
        };
        prepare(upload, &scratch.path, &Tools::default()).await
    }

    #[tokio::test]
    async fn the_ini_travels_with_the_job_with_its_chosen_section() {
        let prepared = submit(SECTIONED, Some("small")).await.unwrap();
        let s = &prepared.settings;
        assert_eq!((s.resolution_x, s.resolution_y), (16, 12));
        assert_eq!((s.frame_start, s.frame_end), (1, 12));
        let pov = s.povray.as_ref().unwrap();
        assert!(pov.cyclic);
        assert_eq!(pov.ini.as_deref().map(str::as_bytes), Some(SECTIONED));
        assert_eq!(pov.ini_section.as_deref(), Some("small"));

        let global = submit(SECTIONED, None).await.unwrap();
        assert_eq!(global.settings.frame_size(), (320, 240));
        assert_eq!(global.settings.povray.unwrap().ini_section, None);
    }

    #[tokio::test]
    async fn malformed_inis_are_4xx_that_say_what_to_change() {
        for (ini, section, message) in [
            (
                SECTIONED,
                Some("Huge"),
                "ball.ini: has no [Huge] section; it has [Small], [Big]",
            ),
            (
                b"+W64\n+I/etc/passwd\n".as_slice(),
                None,
                "ball.ini: line 2: +I names \"/etc/passwd\", outside the job's folder; POV-Ray on the farm reads and writes only inside the job, so use a path relative to the scene",
            ),
            (
                b"+KFF10 Include_Ini=more.ini\n".as_slice(),
                None,
                "ball.ini: line 1: Include_Ini reads another .ini file, which idlefarm does not follow; copy its options into this one",
            ),
            (
                b"+kf0.1666 +kff2O\n".as_slice(),
                None,
                "ball.ini: line 1: +KFF must be a whole frame number, not \"2O\"",
            ),
        ] {
            let err = submit(ini, section).await.unwrap_err();
            assert_eq!(err.status, 400, "{message}");
            assert_eq!(err.message, message);
            assert_eq!(err.field, Some(INI));
        }
    }
}
