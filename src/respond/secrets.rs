//! Credentials of the targets: read from an environment variable a target's key names, or from the file named by
//! `{VAR}_FILE`, never from config text; too short to redact is refused.
//!
//! In: the key and the variable's name. Out: the credential, or a [`BuildError`] naming the key. State: none.

use super::*;

/// The shortest credential accepted, in bytes. [`redact`] treats every 4-byte start of a credential as the
/// credential, which only hides a meaningful part of one that is at least this long; a shorter one is refused at
/// start-up rather than left unredacted.
pub(crate) const MIN_SECRET: usize = 8;

/// Read the secret of the target key `key` (`api_token_env`, ...) from the environment variable `var` it names, or
/// from the file named by `{var}_FILE` (Docker and Kubernetes secrets; one trailing newline is dropped). Never
/// from config text or the command line. Errors name the key and the variable; a secret shorter than
/// [`MIN_SECRET`] bytes is an error.
pub(crate) fn secret_from_env(key: &'static str, var: &str) -> Result<String, BuildError> {
    let s = read_secret(var).map_err(|why| BuildError::new(key, var, why))?;
    if s.len() < MIN_SECRET {
        return Err(BuildError::new(
            key,
            var,
            format!(
                "the credential has {} bytes; at least {MIN_SECRET} are required (a shorter one could not be \
                 redacted from logs and reports)",
                s.len()
            ),
        ));
    }
    Ok(s)
}

fn read_secret(var: &str) -> Result<String, String> {
    if let Ok(v) = std::env::var(var) {
        return Ok(v);
    }
    let file_var = format!("{var}_FILE");
    match std::env::var(&file_var) {
        Ok(path) => {
            let mut s = std::fs::read_to_string(&path)
                .map_err(|e| format!("{file_var} = {path:?}: {e}"))?;
            if s.ends_with('\n') {
                s.pop();
                if s.ends_with('\r') {
                    s.pop();
                }
            }
            if s.is_empty() {
                return Err(format!("{file_var} = {path:?}: the file is empty"));
            }
            Ok(s)
        }
        Err(_) => Err(format!(
            "environment variable {var} is not set (nor {file_var}, a file holding it)"
        )),
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn a_secret_can_come_from_the_file_named_by_var_file() {
        let dir = std::env::temp_dir().join(format!("quench-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "s3cret-from-file\n").unwrap();
        std::env::set_var("QUENCH_TEST_SECRET_VIA_FILE_FILE", &f);
        assert_eq!(
            secret_from_env("token_env", "QUENCH_TEST_SECRET_VIA_FILE").unwrap(),
            "s3cret-from-file"
        );
        let e = secret_from_env("token_env", "QUENCH_TEST_SECRET_NOWHERE").unwrap_err();
        assert_eq!(e.key, "token_env");
        let e = e.to_string();
        assert!(e.contains("QUENCH_TEST_SECRET_NOWHERE_FILE"), "{e}");
    }
}
