//! Secrets kept out of logs and error messages.

/// `url` with the password of every `scheme://user:password@host` in it replaced by `***` (several
/// comma-separated URLs each); anything else unchanged.
pub fn mask_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let Some((scheme, rest)) = one.split_once("://") else {
                return one.to_string();
            };
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
                    None => one.to_string(),
                },
                None => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask_url("postgres://app:s3cret@db:5432/bo?sslmode=require"),
            "postgres://app:***@db:5432/bo?sslmode=require"
        );
        assert_eq!(
            mask_url("nats://a:p@n1:4222,nats://b:q@n2:4222"),
            "nats://a:***@n1:4222,nats://b:***@n2:4222"
        );
        assert_eq!(mask_url("nats://n:4222"), "nats://n:4222");
        assert_eq!(mask_url("nats://token@n:4222"), "nats://token@n:4222");
        assert_eq!(mask_url("not a url"), "not a url");
    }
}
