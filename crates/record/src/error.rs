use std::path::PathBuf;

/// Why a recording could not be made or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot create the recording {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the recording {} failed: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("an H.264 key frame without SPS and PPS cannot start a recording")]
    NoParameterSets,
    #[error("MP4 box encoding failed: {0}")]
    Box(#[from] mp4_atom::Error),
    #[error("the recorder thread could not start: {0}")]
    Thread(std::io::Error),
}
