; Faceswap++ for Windows (Inno Setup 6). Build on Windows after
;   cargo build --release -p faceswap-ofx -p faceswapd
; with: iscc /DVersion=0.1.0 installers\windows\faceswappp.iss
; Installs the OFX bundle where OFX hosts look on Windows
; (C:\Program Files\Common Files\OFX\Plugins\Faceswap.ofx.bundle\Contents\Win64\Faceswap.ofx),
; the daemon into {app}, and a scheduled task that starts the daemon at each user's logon.
; Sign faceswapd.exe and Faceswap.ofx (signtool) before building, and the setup after
; (see installers/README.md).

#ifndef Version
  #define Version "0.1.0"
#endif
#define RepoRoot "..\.."

[Setup]
AppId={{6C1F3E2A-5B7D-4E8A-9C0F-2D4B6A8E1F37}
AppName=Faceswap++
AppVersion={#Version}
AppPublisher=Faceswap++ developers
DefaultDirName={autopf}\Faceswap++
DefaultGroupName=Faceswap++
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequired=admin
OutputBaseFilename=Faceswap++-{#Version}-setup
Compression=lzma2
SolidCompression=yes
ChangesEnvironment=no
UninstallDisplayName=Faceswap++ {#Version}

[Files]
Source: "{#RepoRoot}\target\release\faceswap_ofx.dll"; DestDir: "{commoncf64}\OFX\Plugins\Faceswap.ofx.bundle\Contents\Win64"; DestName: "Faceswap.ofx"; Flags: ignoreversion
Source: "{#RepoRoot}\installers\resources\org.faceswappp.Faceswap.png"; DestDir: "{commoncf64}\OFX\Plugins\Faceswap.ofx.bundle\Contents\Resources"; Flags: ignoreversion
Source: "{#RepoRoot}\installers\resources\org.faceswappp.FaceswapTrainer.png"; DestDir: "{commoncf64}\OFX\Plugins\Faceswap.ofx.bundle\Contents\Resources"; Flags: ignoreversion
Source: "{#RepoRoot}\target\release\faceswapd.exe"; DestDir: "{app}"; Flags: ignoreversion

[Dirs]
Name: "{commoncf64}\OFX\Plugins\Faceswap.ofx.bundle"

[Run]
; A per-user background process started at logon (no Windows service: the daemon runs as the user).
Filename: "{sys}\schtasks.exe"; Parameters: "/Create /TN ""Faceswap++ daemon"" /TR ""\""{app}\faceswapd.exe\"" serve"" /SC ONLOGON /RL LIMITED /F"; Flags: runhidden; StatusMsg: "Registering the Faceswap++ daemon to start at logon..."
Filename: "{app}\faceswapd.exe"; Parameters: "assets fetch --models --runtime"; Flags: runhidden runasoriginaluser; StatusMsg: "Fetching model files (SHA-256 pinned)..."
Filename: "{sys}\schtasks.exe"; Parameters: "/Run /TN ""Faceswap++ daemon"""; Flags: runhidden

[UninstallRun]
Filename: "{app}\faceswapd.exe"; Parameters: "shutdown --no-autostart"; Flags: runhidden; RunOnceId: "StopDaemon"
Filename: "{sys}\schtasks.exe"; Parameters: "/Delete /TN ""Faceswap++ daemon"" /F"; Flags: runhidden; RunOnceId: "DeleteTask"
