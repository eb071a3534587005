# Sourced by the tools/ scripts that download Debian packages without touching the system's apt:
#   private_apt_config FOLDER TYPES SUITES ARCHITECTURES
# writes a deb822 source for deb.debian.org (main) with those types ("deb" or "deb deb-src"),
# suites and architectures (the first one native) into FOLDER, with its own lists, cache and an
# empty dpkg status, and sets the array apt_options for apt-get / apt-cache (`apt-get update`
# with it reads the lists into FOLDER; nothing outside FOLDER changes).
private_apt_config() {
  local folder="$1" types="$2" suites="$3" architectures="$4" architecture
  mkdir -p "$folder/lists/partial" "$folder/cache/archives/partial" "$folder/sources" \
    "$folder/status"
  : >"$folder/status/status"
  cat >"$folder/sources/debian.sources" <<SOURCES
Types: $types
URIs: http://deb.debian.org/debian
Suites: $suites
Components: main
Architectures: $architectures
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  apt_options=(
    -o "Dir::State::Lists=$folder/lists" -o "Dir::Cache=$folder/cache"
    -o "Dir::State::status=$folder/status/status"
    -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$folder/sources"
    -o "APT::Architecture=${architectures%% *}"
    -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1"
  )
  for architecture in $architectures; do
    apt_options+=(-o "APT::Architectures::=$architecture")
  done
}
