//! Transparent huge pages for the server's heap, asked of glibc by re-executing once.
//!
//! At 1M relationships a quarter of a check's time is TLB misses: the index's tables are
//! tens of megabytes and each probe lands on another 4 KiB page. glibc's malloc backs its
//! heap with 2 MiB pages when the `glibc.malloc.hugetlb=1` tunable is set, but tunables
//! are read when the process starts, and the crate forbids the `unsafe` an `madvise` call
//! would need. So `serve` replaces itself once, through `exec` (same process id, same
//! arguments, same descriptors), with the tunable added to `GLIBC_TUNABLES`.
//!
//! Nothing happens when the operator already set the tunable (either value), when the
//! kernel's THP mode is not `madvise` (`always` backs the heap anyway, `never` refuses),
//! or with `--huge-pages off`. If the `exec` fails (the binary was replaced on disk), the
//! server starts as it is and says so.

use std::ffi::{OsStr, OsString};

use clap::ValueEnum;

/// The tunable that makes glibc's malloc `madvise(MADV_HUGEPAGE)` its heap.
const TUNABLE: &str = "glibc.malloc.hugetlb";
/// Where the kernel says its THP mode, the chosen one in brackets.
const THP_MODE: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// `--huge-pages`: whether `serve` asks for a heap on transparent huge pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum HugePages {
    /// Ask glibc for them when the kernel gives them on request (THP mode `madvise`).
    #[default]
    Auto,
    /// Leave the heap on the kernel's default pages.
    Off,
}

/// The `GLIBC_TUNABLES` value to re-execute with, or `None` when no re-execution is
/// wanted: `current` is the variable as the process got it, `thp_mode` the kernel's
/// mode file (`always [madvise] never`).
pub fn tunables_for(current: Option<&OsStr>, thp_mode: &str) -> Option<OsString> {
    let chosen = thp_mode
        .split_whitespace()
        .find_map(|mode| mode.strip_prefix('[')?.strip_suffix(']'))?;
    if chosen != "madvise" {
        return None;
    }
    let setting = format!("{TUNABLE}=1");
    let Some(current) = current.filter(|it| !it.is_empty()) else {
        return Some(setting.into());
    };
    // An operator's own choice, either way, is left alone; so is a variable that is
    // not text (glibc would not read it as we do).
    let text = current.to_str()?;
    if text
        .split(':')
        .any(|item| item.split('=').next() == Some(TUNABLE))
    {
        return None;
    }
    Some(format!("{text}:{setting}").into())
}

/// Whether this process's heap was asked for huge pages (by us or by the operator).
pub fn enabled() -> bool {
    std::env::var("GLIBC_TUNABLES")
        .is_ok_and(|text| text.split(':').any(|item| item == format!("{TUNABLE}=1")))
}

/// Re-executes the running binary with the tunable when `choice` and the system call
/// for it; returns only when it did not (nothing to do, or the `exec` failed).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn apply(choice: HugePages) {
    use std::os::unix::process::CommandExt;

    if choice == HugePages::Off {
        return;
    }
    let Ok(mode) = std::fs::read_to_string(THP_MODE) else {
        return;
    };
    let Some(tunables) = tunables_for(std::env::var_os("GLIBC_TUNABLES").as_deref(), &mode) else {
        return;
    };
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(&exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    let err = command.args(args).env("GLIBC_TUNABLES", tunables).exec();
    eprintln!(
        "arbiter: starting without huge pages: cannot re-execute `{}`: {err}",
        exe.display()
    );
}

/// Huge pages are asked of glibc on Linux only; elsewhere this does nothing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn apply(_choice: HugePages) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunable_is_added_only_in_madvise_mode_and_never_over_an_operators_choice() {
        let madvise = "always [madvise] never";
        let cases: &[(Option<&str>, &str, Option<&str>)] = &[
            (None, madvise, Some("glibc.malloc.hugetlb=1")),
            (Some(""), madvise, Some("glibc.malloc.hugetlb=1")),
            (
                Some("glibc.malloc.arena_max=2"),
                madvise,
                Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
            ),
            (Some("glibc.malloc.hugetlb=0"), madvise, None),
            (
                Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2"),
                madvise,
                None,
            ),
            (None, "[always] madvise never", None),
            (None, "always madvise [never]", None),
            (None, "", None),
            (None, "garbage", None),
        ];
        for (current, mode, want) in cases {
            let got = tunables_for(current.map(OsStr::new), mode);
            assert_eq!(
                got.as_deref().and_then(OsStr::to_str),
                *want,
                "GLIBC_TUNABLES={current:?}, mode {mode:?}"
            );
        }
    }
}
