//! The executor's checkpoints: a failed step stops the run with the command
//! and how to go on; the re-run after the fix skips what was done.

use mkrescue::recover::executor;
use mkrescue::recover::plan::{Plan, Step};

fn step(id: &str, argv: &[&str]) -> Step {
    Step {
        id: id.into(),
        what: id.into(),
        env: vec![],
        argv: argv.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        needs: vec![],
        makes: vec![],
    }
}

#[test]
fn failure_stops_and_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let counter = format!("{d}/count");
    let state = dir.path().join("state");
    // Step 1 appends a line each time it runs: it must run exactly once.
    let plan = Plan {
        steps: vec![
            step("first", &["sh", "-c", &format!("echo x >> {counter}")]),
            step("needs the fix", &["test", "-e", &format!("{d}/fixed")]),
            step("third", &["touch", &format!("{d}/third")]),
        ],
        sizes: Vec::new(),
    };
    let e = executor::run(&plan, &state).err().expect("step 2 fails");
    let msg = format!("{e:#}");
    assert!(msg.contains("step 2/3 (needs the fix) failed"), "{msg}");
    assert!(msg.contains("the 1 finished steps are skipped"), "{msg}");
    assert!(msg.contains(&format!("test -e {d}/fixed")), "{msg}");
    assert!(
        !dir.path().join("third").exists(),
        "nothing after the failure ran"
    );

    std::fs::write(dir.path().join("fixed"), "").unwrap();
    let done = executor::run(&plan, &state).unwrap();
    assert_eq!(done.skipped, 1);
    assert!(dir.path().join("third").exists());
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "x\n");

    // A changed command is a different step: it runs again.
    let mut changed = plan.clone();
    changed.steps[0] = step("first", &["sh", "-c", &format!("echo y >> {counter}")]);
    let done = executor::run(&changed, &state).unwrap();
    assert_eq!(done.skipped, 2);
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "x\ny\n");
}

#[test]
fn missing_tool_is_named_before_step_one() {
    let plan = Plan {
        steps: vec![
            step("ok", &["true"]),
            step("missing", &["mkfs.nonexistent-fs", "/dev/null"]),
        ],
        sizes: Vec::new(),
    };
    let e = executor::check_tools(&plan).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("recover needs mkfs.nonexistent-fs"), "{msg}");
    assert!(msg.contains("nothing was changed"), "{msg}");
    assert_eq!(mkrescue::error::code_of(&e), mkrescue::error::Code::Host);
}
