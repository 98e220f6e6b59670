//! The macro that turns a list of `Variant = "name" | "alias"…` into an enum with one spelling per
//! name: `ALL`, `name`, `c_name`, `FromStr`, `Display`, serde as the name, and clap's `ValueEnum`.

use thiserror::Error;

/// A name that is not in a closed set.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} {given:?}: use one of {names}")]
pub struct UnknownOption {
    /// What the set is ("merge mode").
    pub what: &'static str,
    /// The name given.
    pub given: String,
    /// The accepted names, comma-separated.
    pub names: String,
}

/// Declares a closed option set. Names match case-insensitively; aliases are accepted on input
/// (old spellings, job records and face files written by earlier releases) and never written.
#[macro_export]
macro_rules! closed_set {
    (
        $(#[$attr:meta])*
        pub enum $name:ident ($what:literal) {
            $(
                $(#[$vattr:meta])*
                $variant:ident = $spelling:literal $(| $alias:literal)*
            ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                $(#[$vattr])*
                $variant,
            )+
        }

        impl $name {
            /// What the set is, for messages.
            pub const WHAT: &'static str = $what;

            /// Every member, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one spelling written everywhere (CLI, job records, config, plug-in labels).
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $spelling,)+
                }
            }

            /// [`Self::name`] as a C string (the plug-in's choice labels).
            pub const fn c_name(self) -> &'static ::std::ffi::CStr {
                match self {
                    $($name::$variant => {
                        const C: &::std::ffi::CStr =
                            match ::std::ffi::CStr::from_bytes_with_nul(concat!($spelling, "\0").as_bytes()) {
                                Ok(c) => c,
                                Err(_) => panic!("an option name holds a NUL"),
                            };
                        C
                    })+
                }
            }

            /// The spellings read besides the name.
            pub const fn aliases(self) -> &'static [&'static str] {
                match self {
                    $($name::$variant => &[$($alias),*],)+
                }
            }

            /// Every name, comma-separated (help and error text).
            pub fn names() -> String {
                let names: &[&str] = &[$($spelling),+];
                names.join(", ")
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownOption;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                for m in $name::ALL {
                    if m.name().eq_ignore_ascii_case(s)
                        || m.aliases().iter().any(|a| a.eq_ignore_ascii_case(s))
                    {
                        return Ok(*m);
                    }
                }
                Err($crate::UnknownOption {
                    what: $what,
                    given: s.to_string(),
                    names: $name::names(),
                })
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }

        $crate::clap_value_enum!($name);
    };
}

/// clap's `ValueEnum` for a closed set, when the `clap` feature is on.
#[cfg(feature = "clap")]
#[doc(hidden)]
#[macro_export]
macro_rules! clap_value_enum {
    ($name:ident) => {
        impl ::clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                $name::ALL
            }

            fn to_possible_value(&self) -> Option<::clap::builder::PossibleValue> {
                Some(
                    ::clap::builder::PossibleValue::new(self.name())
                        .aliases(self.aliases().iter().copied()),
                )
            }
        }
    };
}

/// Without the `clap` feature: nothing.
#[cfg(not(feature = "clap"))]
#[doc(hidden)]
#[macro_export]
macro_rules! clap_value_enum {
    ($name:ident) => {};
}
