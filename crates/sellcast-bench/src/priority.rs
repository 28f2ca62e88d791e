//! Thread priority for load that stands in for other machines.
//!
//! The attack run's attackers share this machine's cores with the server and the honest
//! viewers, where in the field they would bring their own. Left at normal priority they take
//! CPU time from the honest viewers' receive loops and from the server's media thread, and
//! the run then measures this machine's scheduler rather than the server's defences. Their
//! threads run at the lowest priority (nice 19) instead: they still send what they send
//! (the run reports the rates they reached), but never ahead of the side being measured.

/// Lowest nice value: the scheduler gives such a thread CPU time only when others leave it.
pub const BACKGROUND_NICE: i32 = 19;

/// Set the calling thread's nice value (Linux keeps one per thread). Raising it needs no
/// privilege.
#[allow(unsafe_code)]
pub fn set_this_thread_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: `setpriority` takes plain integers and touches no memory of ours; with
    // `PRIO_PROCESS` and `who == 0` Linux applies it to the calling thread only.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if r == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn this_thread_nice() -> i32 {
        // SAFETY: as above; `getpriority` only reads.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[test]
    fn applies_to_the_calling_thread_only() {
        let before = this_thread_nice();
        let inside = std::thread::spawn(|| {
            set_this_thread_nice(BACKGROUND_NICE).map(|()| this_thread_nice())
        })
        .join()
        .expect("the thread ran");
        assert_eq!(inside.expect("raising nice needs no privilege"), BACKGROUND_NICE);
        assert_eq!(this_thread_nice(), before);
    }
}
